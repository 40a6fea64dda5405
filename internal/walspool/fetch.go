package walspool

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// restore_command served by the agent. PostgreSQL runs restore_command
// as a new process for every file it asks for, and during an election
// the promotion waits for those calls: the call in flight when pg_promote
// comes, the end of recovery's re-read of the last segment, the next
// timeline's history file. Started as the whole pgguard, each call pays
// the binary's start and a repository open (a key derivation): 100 to
// 400 ms each, most of a promotion's second. The agent beside the server
// keeps the repository open; pgguard-wal hands it the request over a
// local socket and exits with its answer, a few milliseconds after it
// started. With no agent answering, pgguard-wal runs pgguard as before.

// fetchProtocol names the request's form; an agent that speaks another
// answers with an error, and pgguard-wal then runs pgguard.
const fetchProtocol = "pgguard-wal-fetch/1"

// FetchRequest is what pgguard-wal sends: one JSON line.
type FetchRequest struct {
	Protocol string
	// DataDir identifies the data directory by its device and inode (an
	// abstract socket's name is per network namespace, not per file
	// system: a container with the same path must not be served).
	Dev, Ino uint64
	// Config is the -c of restore_command, made absolute: the agent
	// serves only its own configuration's repository.
	Config string
	Name   string // %f
	Dest   string // %p, made absolute
}

// FetchSocket is the agent's socket for the data directory: an abstract
// Unix socket (no file to leave behind; Linux), named after the
// directory's real path, so that the agent and the restore_command its
// server runs find the same one. Who listens is checked by both sides
// (peer credentials), and which directory by the request.
func FetchSocket(dataDir string) string {
	sum := sha256.Sum256([]byte(realPath(dataDir)))
	return "@pgguard-wal-fetch-" + hex.EncodeToString(sum[:12])
}

// realPath is path made absolute with its links resolved, as far as it
// exists.
func realPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		return real
	}
	return filepath.Clean(path)
}

// Answers of a fetch.
const (
	Found   = "found"   // Dest holds the file
	Missing = "missing" // the archive does not have it (restore_command exits 1)
)

// ErrNoAgent: no agent of this user listens for the data directory, or it
// did not answer; the caller runs pgguard instead.
var ErrNoAgent = errors.New("no agent serves restore_command here")

// AskAgent asks the agent serving dataDir to write WAL file name to dest
// (restore_command's %f and %p, dest made absolute), from the repository
// of the configuration at config, and returns Found or Missing. Any other
// outcome (no agent, an error the agent reports, no answer within limit)
// is an error; the caller then runs pgguard, which does the work itself
// and says what is wrong.
func AskAgent(dataDir, config, name, dest string, limit time.Duration) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dataDir, &st); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", FetchSocket(dataDir))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	// The name is known to every local user: only an agent of this
	// user (or root) may answer.
	if uid, err := peerUID(conn); err != nil || (uid != 0 && uid != os.Getuid()) {
		return "", fmt.Errorf("%w: the socket's owner is uid %d (%v), not this user", ErrNoAgent, uid, err)
	}
	_ = conn.SetDeadline(time.Now().Add(limit))
	req := FetchRequest{Protocol: fetchProtocol, Dev: uint64(st.Dev), Ino: st.Ino, Config: realPath(config), Name: name, Dest: dest}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("%w: no answer: %v", ErrNoAgent, err)
	}
	switch answer := strings.TrimSpace(line); answer {
	case Found, Missing:
		return answer, nil
	default:
		return "", fmt.Errorf("agent: %s", strings.TrimPrefix(answer, "error "))
	}
}

// FetchFunc does a fetch for the server: it writes name to dest and
// reports whether the archive had it. It must end when ctx does (the
// client went away, or the request's limit passed).
type FetchFunc func(ctx context.Context, name, dest string) (found bool, err error)

// FetchServer answers pgguard-wal's requests for one data directory.
type FetchServer struct {
	DataDir string
	Config  string        // the agent's configuration file
	Limit   time.Duration // bounds one request
	Fetch   FetchFunc
	// Answered, when set, learns each answer: Found, Missing, or the
	// error (a refused request too).
	Answered func(answer string, err error)
}

// Listen opens the agent's socket for s.DataDir.
func (s *FetchServer) Listen() (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: FetchSocket(s.DataDir), Net: "unix"})
}

// Serve answers requests on ln until ctx ends or accepting fails, one
// goroutine a connection and one fetch at a time (PostgreSQL asks one
// file at a time; a fetch left over from a client that went away ends
// before the next one writes), and returns once every connection is
// done. It serves only processes of its own user or root (PostgreSQL runs
// as the agent's user), for its data directory and configuration, and
// only destinations in that directory or its pg_wal.
func (s *FetchServer) Serve(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	one := make(chan struct{}, 1)
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			ln.Close()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveOne(ctx, conn, one)
		}()
	}
}

func (s *FetchServer) serveOne(ctx context.Context, conn *net.UnixConn, one chan struct{}) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(s.Limit))
	answer := func(a string, err error) {
		if s.Answered != nil {
			s.Answered(a, err)
		}
		if err != nil {
			a = "error " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = fmt.Fprintln(conn, a)
	}
	if uid, err := peerUID(conn); err != nil || (uid != 0 && uid != os.Getuid()) {
		answer("", fmt.Errorf("only the agent's own user may ask (peer uid %d)", uid))
		return
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var req FetchRequest
	if err := json.Unmarshal(line, &req); err != nil || req.Protocol != fetchProtocol {
		answer("", fmt.Errorf("a request of another form than %s", fetchProtocol))
		return
	}
	if err := s.check(req); err != nil {
		answer("", err)
		return
	}
	// The request ends when the client goes away (PostgreSQL stopped and
	// took restore_command with it): it sends nothing after the request,
	// so a read returns only then.
	fctx, cancel := context.WithTimeout(ctx, s.Limit)
	defer cancel()
	go func() {
		_, _ = r.ReadByte()
		cancel()
	}()
	select {
	case one <- struct{}{}:
		defer func() { <-one }()
	case <-fctx.Done():
		answer("", fmt.Errorf("waited for another fetch: %w", fctx.Err()))
		return
	}
	found, err := s.Fetch(fctx, req.Name, req.Dest)
	switch {
	case err != nil:
		answer("", err)
	case found:
		answer(Found, nil)
	default:
		answer(Missing, nil)
	}
}

// check refuses a request for another data directory or configuration,
// a name that is not a file name, or a destination elsewhere.
func (s *FetchServer) check(req FetchRequest) error {
	var st syscall.Stat_t
	if err := syscall.Stat(s.DataDir, &st); err != nil || uint64(st.Dev) != req.Dev || st.Ino != req.Ino {
		return fmt.Errorf("a request for another data directory than %s", s.DataDir)
	}
	if req.Config != realPath(s.Config) {
		return fmt.Errorf("restore_command names the configuration %s; this agent serves %s's repository only", req.Config, s.Config)
	}
	if req.Name == "" || req.Name != filepath.Base(req.Name) || strings.HasPrefix(req.Name, ".") {
		return fmt.Errorf("%q is not a WAL file name", req.Name)
	}
	if !destAllowed(s.DataDir, req.Dest) {
		return fmt.Errorf("%s is not in the data directory this agent serves", req.Dest)
	}
	return nil
}

// destAllowed reports whether path, absolute, names a file directly in
// dataDir's pg_wal (which may be a link to another volume) or below
// dataDir.
func destAllowed(dataDir, path string) bool {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return false
	}
	parent := realPath(filepath.Dir(path))
	if parent == realPath(filepath.Join(dataDir, "pg_wal")) {
		return true
	}
	rel, err := filepath.Rel(realPath(dataDir), parent)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func peerUID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}
