package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/privdrop"
)

// serverLogName is where a server started by restore writes its log,
// inside the target directory.
const serverLogName = "pgguard-restore.log"

// Server is a PostgreSQL server restore started on the restored directory,
// as a direct child of this process.
type Server struct {
	PID     int
	Port    int
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // from Wait, valid once done is closed
}

// Done is closed when the server has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop shuts the server down (fast shutdown, SIGINT) and waits up to
// timeout for it to exit. Stopping an exited server is a no-op.
func (s *Server) Stop(timeout time.Duration) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop postgres (pid %d): %w", s.PID, err)
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("postgres (pid %d) did not stop within %s after a fast shutdown request; see %s", s.PID, timeout, s.LogPath)
	}
}

// LogTail returns the last n bytes of the server log.
func (s *Server) LogTail(n int) string {
	b, _ := os.ReadFile(s.LogPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// startServer runs postgres on dir as acct. It listens on 127.0.0.1:port
// only: a restored copy must not take the original's clients by accident;
// the operator opens it wider once satisfied.
func startServer(tools pgbin.Tools, dir string, port int, acct osuser.Account) (*Server, error) {
	logPath := filepath.Join(dir, serverLogName)
	logf, err := openServerLog(logPath, acct)
	if err != nil {
		return nil, fmt.Errorf("start postgres: open log: %w", err)
	}
	// No synchronous standbys: a copy has none, and one restored from a
	// primary in a synchronous mode would otherwise wait at its first
	// commit for ever (a drill's CREATE EXTENSION hung so for an hour).
	cmd := exec.Command(tools.Path("postgres"), "-D", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "synchronous_standby_names=")
	acct.Apply(cmd)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Its own process group: a Ctrl-C meant for pgguard must not stop it.
	cmd.SysProcAttr.Setpgid = true
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", tools.Path("postgres"), err)
	}
	s := &Server{PID: cmd.Process.Pid, Port: port, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); logf.Close(); close(s.done) }()
	return s, nil
}

// login is who watches recovery: a role, its password ("": libpq's
// defaults, PGPASSWORD or a password file) and a database.
type login struct{ user, password, db string }

// waitOpen polls the server until recovery has ended the way action says:
// promote waits until it is out of recovery, pause until replay is paused,
// shutdown until it exits cleanly. It reports what it last saw on failure.
func waitOpen(ctx context.Context, s *Server, who login, action string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable connect_timeout=5", s.Port, who.user, who.db)
	last := "no connection yet"
	for {
		select {
		case <-s.done:
			if action == "shutdown" && s.err == nil {
				return nil
			}
			return fmt.Errorf("postgres exited during recovery (%v); log tail:\n%s", s.err, s.LogTail(3000))
		default:
		}
		if action != "shutdown" {
			ok, seen, err := probe(ctx, conninfo, who.password, action)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			last = seen
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recovery did not finish within %s; last seen: %s; log: %s", timeout, last, s.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
		case <-time.After(200 * time.Millisecond): // poll interval
		}
	}
}

// probe reports whether the server reached the state action wants, what
// it saw, and an error when waiting longer cannot help (the server refuses
// the probe's login).
func probe(ctx context.Context, conninfo, password, action string) (bool, string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return false, "", err
	}
	if password != "" {
		cfg.Password = password
	}
	conn, err := pgx.ConnectConfig(cctx, cfg)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28") {
		return false, "", fmt.Errorf("cannot watch recovery: the server refuses a local connection (%s): %w; it is still starting, check it yourself", conninfo, err)
	}
	if err != nil {
		return false, "connect: " + firstLine(err.Error()), nil
	}
	defer conn.Close(context.Background())
	var inRecovery bool
	var paused string
	err = conn.QueryRow(cctx, `SELECT pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END`).Scan(&inRecovery, &paused)
	if err != nil {
		return false, "query: " + firstLine(err.Error()), nil
	}
	seen := fmt.Sprintf("pg_is_in_recovery=%t replay_pause_state=%q", inRecovery, paused)
	if action == "pause" {
		return inRecovery && paused == "paused", seen, nil
	}
	return !inRecovery, seen, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// openServerLog opens the server's log in the data directory for
// appending, as acct: a link in its place (a delta restore keeps the log)
// is removed, not followed, and a file acct may not write is refused
// rather than handed over.
func openServerLog(logPath string, acct osuser.Account) (*os.File, error) {
	fsys, err := privdrop.NewFS(acct, 1)
	if err != nil {
		return nil, err
	}
	defer fsys.Close()
	var f *os.File
	err = fsys.Do(func() error {
		if fi, err := os.Lstat(logPath); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if err := os.Remove(logPath); err != nil {
				return err
			}
		}
		var err error
		f, err = os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
		return err
	})
	return f, err
}
