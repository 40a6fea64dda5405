package walspool

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is a FetchServer started for a new data directory (with
// pg_wal) and a configuration file, and what it answered.
type server struct {
	*FetchServer
	mu       sync.Mutex
	answered []string
}

func serve(t *testing.T, fetch FetchFunc) *server {
	t.Helper()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(dataDir, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(config, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{}
	s.FetchServer = &FetchServer{DataDir: dataDir, Config: config, Limit: 5 * time.Second, Fetch: fetch,
		Answered: func(answer string, err error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				answer = "error"
			}
			s.answered = append(s.answered, answer)
		}}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func (s *server) answers() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.answered, " ")
}

// The agent's answers reach restore_command: the file written, "not in
// the archive", and an error, which the caller must not take for either.
func TestAgentAnswersRestoreCommand(t *testing.T) {
	const seg = "000000010000000000000007"
	s := serve(t, func(_ context.Context, name, dest string) (bool, error) {
		switch name {
		case seg:
			return true, os.WriteFile(dest, []byte("wal"), 0o600)
		case "00000002.history":
			return false, nil
		}
		return false, errors.New("repository unreachable\nsecond line")
	})
	dest := filepath.Join(s.DataDir, "pg_wal", "RECOVERYXLOG")
	if got, err := AskAgent(s.DataDir, s.Config, seg, dest, 5*time.Second); err != nil || got != Found {
		t.Fatalf("fetch of an archived segment: %q, %v; want %q", got, err, Found)
	}
	if b, err := os.ReadFile(dest); err != nil || string(b) != "wal" {
		t.Fatalf("the segment written: %q, %v", b, err)
	}
	if got, err := AskAgent(s.DataDir, s.Config, "00000002.history", dest, 5*time.Second); err != nil || got != Missing {
		t.Fatalf("fetch of a file the archive lacks: %q, %v; want %q", got, err, Missing)
	}
	got, err := AskAgent(s.DataDir, s.Config, "000000010000000000000008", dest, 5*time.Second)
	if err == nil || errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "repository unreachable second line") {
		t.Fatalf("fetch that failed in the agent: %q, %v; want the agent's error on one line", got, err)
	}
	if a := s.answers(); a != "found missing error" {
		t.Fatalf("the server's answers: %q", a)
	}
}

// ask sends req as pgguard-wal would and returns the answer line.
func ask(t *testing.T, dataDir string, req FetchRequest) string {
	t.Helper()
	conn, err := net.Dial("unix", FetchSocket(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4096)
	n, _ := conn.Read(b)
	return strings.TrimSpace(string(b[:n]))
}

// What the agent refuses without fetching, each named in the answer:
// another data directory (same socket name, other inode), another
// configuration, a name that is a path, a destination outside the data
// directory however it is written.
func TestAgentRefusesOtherDirectoriesConfigsNamesAndDestinations(t *testing.T) {
	s := serve(t, func(context.Context, string, string) (bool, error) {
		t.Error("the agent fetched for a refused request")
		return true, nil
	})
	var st syscall.Stat_t
	if err := syscall.Stat(s.DataDir, &st); err != nil {
		t.Fatal(err)
	}
	good := FetchRequest{Protocol: fetchProtocol, Dev: uint64(st.Dev), Ino: st.Ino, Config: realPath(s.Config),
		Name: "000000010000000000000007", Dest: filepath.Join(s.DataDir, "pg_wal", "RECOVERYXLOG")}
	for _, tc := range []struct {
		what string
		edit func(*FetchRequest)
		want string
	}{
		{"another protocol", func(r *FetchRequest) { r.Protocol = "pgguard-wal-fetch/9" }, "another form"},
		{"another data directory", func(r *FetchRequest) { r.Ino++ }, "another data directory"},
		{"another configuration", func(r *FetchRequest) { r.Config = "/etc/pgguard/other.yaml" }, "serves"},
		{"a path for a name", func(r *FetchRequest) { r.Name = "../postgresql.conf" }, "not a WAL file name"},
		{"an empty name", func(r *FetchRequest) { r.Name = "" }, "not a WAL file name"},
		{"a destination elsewhere", func(r *FetchRequest) { r.Dest = filepath.Join(t.TempDir(), "RECOVERYXLOG") }, "not in the data directory"},
		{"a destination through ..", func(r *FetchRequest) { r.Dest = s.DataDir + "/../elsewhere" }, "not in the data directory"},
		{"a relative destination", func(r *FetchRequest) { r.Dest = "pg_wal/RECOVERYXLOG" }, "not in the data directory"},
	} {
		req := good
		tc.edit(&req)
		if got := ask(t, s.DataDir, req); !strings.HasPrefix(got, "error ") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: answered %q, want an error saying %q", tc.what, got, tc.want)
		}
	}
	if a := s.answers(); a != strings.TrimSpace(strings.Repeat("error ", 8)) {
		t.Fatalf("the server's answers: %q, want 8 errors", a)
	}
}

// pg_wal on another volume (initdb --waldir: a link in the data
// directory) is where restore_command writes; it is served.
func TestAgentServesALinkedPgWal(t *testing.T) {
	s := serve(t, func(_ context.Context, _, dest string) (bool, error) {
		return true, os.WriteFile(dest, []byte("wal"), 0o600)
	})
	walDir := filepath.Join(t.TempDir(), "wal")
	if err := os.Mkdir(walDir, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(s.DataDir, "pg_wal")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(walDir, link); err != nil {
		t.Fatal(err)
	}
	if got, err := AskAgent(s.DataDir, s.Config, "000000010000000000000007", filepath.Join(link, "RECOVERYXLOG"), 5*time.Second); err != nil || got != Found {
		t.Fatalf("fetch into a linked pg_wal: %q, %v; want %q", got, err, Found)
	}
	if _, err := os.Stat(filepath.Join(walDir, "RECOVERYXLOG")); err != nil {
		t.Fatal(err)
	}
}

// A client that goes away (PostgreSQL stopped, restore_command killed)
// ends its fetch: a fetch left running could rename an old segment over
// the file a later request wrote.
func TestAFetchEndsWhenItsClientGoesAway(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	s := serve(t, func(ctx context.Context, _, _ string) (bool, error) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return false, ctx.Err()
	})
	var st syscall.Stat_t
	if err := syscall.Stat(s.DataDir, &st); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("unix", FetchSocket(s.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	req := FetchRequest{Protocol: fetchProtocol, Dev: uint64(st.Dev), Ino: st.Ino, Config: realPath(s.Config),
		Name: "000000010000000000000007", Dest: filepath.Join(s.DataDir, "pg_wal", "RECOVERYXLOG")}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		t.Fatal(err)
	}
	<-started
	gone := time.Now()
	conn.Close()
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the fetch ended with %v, want canceled (not its 5 s limit)", err)
		}
		t.Logf("the fetch ended %s after its client went away", time.Since(gone).Round(time.Millisecond))
	case <-time.After(4 * time.Second):
		t.Fatal("the fetch still runs 4 s after its client went away")
	}
}

// With no agent for the data directory, the caller is told so (and runs
// pgguard).
func TestNoAgentIsErrNoAgent(t *testing.T) {
	dataDir := t.TempDir()
	_, err := AskAgent(dataDir, "/etc/pgguard/node.yaml", "000000010000000000000007", filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG"), time.Second)
	if !errors.Is(err, ErrNoAgent) {
		t.Fatalf("no agent: %v, want ErrNoAgent", err)
	}
}
