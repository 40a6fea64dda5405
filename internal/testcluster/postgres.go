// Package testcluster starts real PostgreSQL (and etcd) instances for tests:
// free loopback ports, readiness waits, and cleanup registered on the test.
// It never mocks a server and never touches a process it did not start.
package testcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/procfs"
)

// PGBinDir is where the PostgreSQL binaries used by tests live.
const PGBinDir = "/usr/lib/postgresql/15/bin"

// PGOptions tunes StartPostgres. The zero value is a fresh cluster with data
// checksums.
type PGOptions struct {
	// NoDataChecksums runs initdb without --data-checksums.
	NoDataChecksums bool
	// Conf lines are appended to postgresql.conf (e.g. archive settings).
	Conf []string
	// DataDir, when set, starts this existing data directory (for example a
	// restored backup) instead of running initdb. It is handed to the
	// PostgreSQL account and removed at cleanup.
	DataDir string
	// ReadyTimeout bounds the wait for the server to accept connections
	// (default 2 minutes; recovery of a restored backup can take a while).
	ReadyTimeout time.Duration
}

// Postgres is one PostgreSQL server started by a test, running as a direct
// child of the test process.
type Postgres struct {
	child
	t       testing.TB
	acct    osuser.Account
	dataDir string
	port    int
	timeout time.Duration
}

// StartPostgres creates (or takes over, see PGOptions.DataDir) a data
// directory, starts postgres on a free loopback port, waits until it accepts
// connections, and registers Stop and removal of its files in t.Cleanup.
func StartPostgres(t testing.TB, opts PGOptions) *Postgres {
	t.Helper()
	acct := Account(t)
	base := Scratch(t, "pgguard-pg-")
	p := &Postgres{child: child{logPath: filepath.Join(base, "postgres.log")}, t: t, acct: acct, timeout: opts.ReadyTimeout}
	if p.timeout <= 0 {
		p.timeout = 2 * time.Minute
	}
	if opts.DataDir != "" {
		p.dataDir = opts.DataDir
		t.Cleanup(func() { os.RemoveAll(opts.DataDir) })
		if err := os.Chmod(p.dataDir, 0o700); err != nil {
			t.Fatalf("chmod data dir: %v", err)
		}
		if err := acct.ChownTree(p.dataDir); err != nil {
			t.Fatalf("chown data dir: %v", err)
		}
	} else {
		p.dataDir = filepath.Join(base, "data")
		p.initdb(opts)
	}
	if len(opts.Conf) > 0 {
		p.appendConf(opts.Conf)
	}
	p.port = FreePort(t)
	t.Cleanup(p.Stop)
	p.Start()
	return p
}

func (p *Postgres) initdb(opts PGOptions) {
	p.t.Helper()
	args := []string{"-D", p.dataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"}
	if !opts.NoDataChecksums {
		args = append(args, "--data-checksums")
	}
	p.run(filepath.Join(PGBinDir, "initdb"), args...)
	p.appendConf([]string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = ''",
		"wal_level = replica",
		"max_wal_senders = 10",
		"max_replication_slots = 10",
		"fsync = off",
		"shared_buffers = 32MB",
		"logging_collector = off",
	})
	hba := "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(p.dataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		p.t.Fatalf("write pg_hba.conf: %v", err)
	}
	if err := p.acct.ChownTree(p.dataDir); err != nil {
		p.t.Fatalf("chown data dir: %v", err)
	}
}

func (p *Postgres) appendConf(lines []string) {
	p.t.Helper()
	f, err := os.OpenFile(filepath.Join(p.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatalf("open postgresql.conf: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n# testcluster\n" + strings.Join(lines, "\n") + "\n"); err != nil {
		p.t.Fatalf("append postgresql.conf: %v", err)
	}
}

// run executes a PostgreSQL tool as the account and fails the test with its
// output if it fails.
func (p *Postgres) run(bin string, args ...string) string {
	p.t.Helper()
	cmd := exec.Command(bin, args...)
	p.acct.Apply(cmd)
	cmd.Env = append(os.Environ(), "PGAPPNAME=testcluster")
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ConnString is a keyword/value connection string for the superuser.
func (p *Postgres) ConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", p.port)
}

// DataDir is the server's data directory.
func (p *Postgres) DataDir() string { return p.dataDir }

// Port is the TCP port the server listens on (127.0.0.1 only).
func (p *Postgres) Port() int { return p.port }

// Account is the operating-system account the server runs as.
func (p *Postgres) Account() osuser.Account { return p.acct }

// LogTail returns the last n bytes of the server log, for failure messages.
func (p *Postgres) LogTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Start starts the server (as a direct child, never through pg_ctl) and
// waits until it accepts connections. Starting a running server fails.
func (p *Postgres) Start() {
	p.t.Helper()
	cmd := exec.Command(filepath.Join(PGBinDir, "postgres"), "-D", p.dataDir, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=")
	p.acct.Apply(cmd)
	cmd.Dir = p.dataDir
	done, err := p.start(cmd)
	if err != nil {
		p.t.Fatalf("start postgres on port %d: %v", p.port, err)
	}
	_ = os.Chown(p.logPath, p.acct.UID, p.acct.GID)
	p.waitReady(done)
}

func (p *Postgres) waitReady(done <-chan struct{}) {
	p.t.Helper()
	deadline := time.Now().Add(p.timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			p.take()
			p.t.Fatalf("postgres exited before accepting connections; log tail:\n%s", p.LogTail(4000))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.ConnString())
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		last = err
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond): // poll interval
		}
	}
	p.t.Fatalf("postgres on port %d not ready after %s, last error: %v; log tail:\n%s", p.port, p.timeout, last, p.LogTail(4000))
}

// Stop shuts the server down (SIGINT, fast shutdown) and waits for it to
// exit; it is a no-op when the server is not running.
func (p *Postgres) Stop() {
	p.signalAndWait(syscall.SIGINT, time.Minute)
	RemoveSharedMemory(p.dataDir) // after a Kill without a Start since
}

// Kill sends SIGKILL to the postmaster, waits for it and for its backends
// (which exit on postmaster death) so that a later Start can reuse the data
// directory.
func (p *Postgres) Kill() {
	p.signalAndWait(syscall.SIGKILL, time.Minute)
}

func (p *Postgres) signalAndWait(sig syscall.Signal, timeout time.Duration) {
	cmd, done := p.take()
	if cmd == nil {
		return
	}
	children := procfs.Children(cmd.Process.Pid)
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		p.t.Errorf("postgres on port %d did not stop within %s after %v; killed", p.port, timeout, sig)
	}
	// Backends outlive a killed postmaster briefly and keep its shared
	// memory attached; wait for them before anyone restarts the directory.
	deadline := time.Now().Add(timeout)
	for _, pid := range children {
		for procfs.Alive(pid) {
			if time.Now().After(deadline) {
				p.t.Errorf("postgres backend %d still running %s after postmaster exit", pid, timeout)
				return
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
	}
}

// Connect opens a new connection to the server; it is closed at cleanup.
func (p *Postgres) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := p.dial(ctx, t)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (p *Postgres) dial(ctx context.Context, t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, p.ConnString())
	if err != nil {
		t.Fatalf("connect to postgres on port %d: %v", p.port, err)
	}
	return conn
}

// Exec runs sql (one or more statements) on a fresh connection and fails the
// test on error.
func (p *Postgres) Exec(t testing.TB, sql string) {
	t.Helper()
	p.withConn(t, func(ctx context.Context, conn *pgx.Conn) {
		if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("exec %q: %v", sql, err)
		}
	})
}

// QueryString runs a query returning one value and returns it as text.
func (p *Postgres) QueryString(t testing.TB, sql string) string {
	t.Helper()
	var s string
	p.withConn(t, func(ctx context.Context, conn *pgx.Conn) {
		if err := conn.QueryRow(ctx, "SELECT ("+sql+")::text").Scan(&s); err != nil {
			t.Fatalf("query %q: %v", sql, err)
		}
	})
	return s
}

// withConn runs use on a fresh connection, closed afterwards, with five
// minutes for the connection and the statement.
func (p *Postgres) withConn(t testing.TB, use func(context.Context, *pgx.Conn)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := p.dial(ctx, t)
	defer conn.Close(context.Background())
	use(ctx, conn)
}

// Pgbench runs pgbench against the server as the PostgreSQL account with the
// given arguments (e.g. "-i", "-s", "10") and returns its output.
func (p *Postgres) Pgbench(t testing.TB, args ...string) string {
	t.Helper()
	full := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", "postgres"}, args...)
	full = append(full, "postgres")
	cmd := exec.Command(filepath.Join(PGBinDir, "pgbench"), full...)
	p.acct.Apply(cmd)
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
