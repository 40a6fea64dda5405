// Package pg owns one local PostgreSQL instance: its process (a direct child
// of the agent, never daemonised through pg_ctl), its configuration files,
// the SQL probes the agent observes it with, and the PostgreSQL tools that
// change its data directory (initdb, pg_basebackup, pg_rewind).
//
// It decides nothing: every method does one thing the agent asked for and
// reports what happened.
package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/pdeath"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/procfs"
)

// Options describe the local instance.
type Options struct {
	Name   string // member name, used as application_name
	BinDir string
	// Programs renames PostgreSQL's programs (forks; see pgbin); Database
	// is the database the agent connects to (default postgres).
	Programs      map[string]string
	Database      string
	DataDir       string
	ListenAddress string
	Port          int
	Superuser     string
	SuperPassword string
	ReplUser      string
	ReplPassword  string
	Parameters    map[string]string
	HBA           []string
	// TLS is what the server presents and what the node's connections
	// require of the servers they reach.
	TLS            TLS
	InitdbArgs     []string
	ArchiveCommand string
	RestoreCommand string
	// ApplyDelay is recovery_min_apply_delay for a standby (a delayed
	// standby); zero for a normal one.
	ApplyDelay time.Duration
	Account    osuser.Account
	LogFile    string
}

// Instance is the local PostgreSQL.
type Instance struct {
	o Options

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current process exits
	exitErr error
	// stopping is set while we stop the process on purpose, so its exit
	// is not reported as a crash.
	stopping bool
	crashes  chan struct{}
	// replayTarget is the recovery target time a standby runs with (an
	// operator's replay request; zero: none).
	replayTarget ReplayTarget
	// syncNames is the synchronous_standby_names a primary runs with.
	syncNames string
	// restoreOff leaves restore_command out of the configuration.
	restoreOff bool
	// peers are the members' "host:port" the passfile holds passwords
	// for, besides this instance's own; passMu serialises its writes.
	peers  map[string]bool
	passMu sync.Mutex
}

// New returns an Instance; nothing is started.
func New(o Options) *Instance {
	return &Instance{o: o, crashes: make(chan struct{}, 1)}
}

// Options returns the options the instance was made with.
func (i *Instance) Options() Options { return i.o }

// Crashes signals every unexpected exit of the postmaster.
func (i *Instance) Crashes() <-chan struct{} { return i.crashes }

// Running reports whether the postmaster this agent started is alive.
func (i *Instance) Running() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.done == nil {
		return false
	}
	select {
	case <-i.done:
		return false
	default:
		return true
	}
}

// ControlFile reads global/pg_control directly (ReadControlFile), or with
// pg_controldata when its version is not one ReadControlFile knows.
func (i *Instance) ControlFile(ctx context.Context) (Control, error) {
	c, err := ReadControlFile(i.o.DataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errControlTorn) {
		return i.Controldata(ctx)
	}
	return c, err
}

func (i *Instance) bin(name string) string { return i.tools().Path(name) }

func (i *Instance) tools() pgbin.Tools {
	return pgbin.Tools{BinDir: i.o.BinDir, Programs: i.o.Programs}
}

func (i *Instance) database() string {
	if i.o.Database == "" {
		return "postgres"
	}
	return i.o.Database
}

// command builds an exec.Cmd of a PostgreSQL tool that runs as the
// database account, with secrets only in the environment.
func (i *Instance) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, i.bin(name), args...)
	cmd.Env = i.toolEnv("PGCONNECT_TIMEOUT=5")
	// Own process group, so a Ctrl-C meant for the agent does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	i.o.Account.Apply(cmd)
	return cmd
}

// run executes a tool and returns its combined output in the error.
func (i *Instance) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := i.command(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(lastLines(out.String(), 8)))
	}
	return out.Bytes(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Start launches the postmaster as a direct child and waits until it
// accepts connections (or, for a standby still catching up, until it is
// running and consistent enough to answer), up to timeout.
func (i *Instance) Start(ctx context.Context, timeout time.Duration) error {
	if i.Running() {
		return nil
	}
	if err := i.clearStaleLock(); err != nil {
		return err
	}
	logf, err := os.OpenFile(i.o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	if ended := i.EndOrphans(5 * time.Second); len(ended) > 0 {
		fmt.Fprintf(logf, "pgguard: ended %d server processes a postmaster that died left running (PIDs %v)\n", len(ended), ended)
	}
	// A server started in recovery must not read a short copy of a
	// switch segment (CompleteShortCopies): it would never become
	// consistent. One that cannot be completed is left to PostgreSQL.
	completed, err := i.CompleteShortCopies()
	for _, name := range completed {
		fmt.Fprintf(logf, "pgguard: completed pg_wal/%s up to its timeline's switch point from the parent timeline's copy: a standby's short copy of its switch segment\n", name)
	}
	if err != nil {
		fmt.Fprintf(logf, "pgguard: a short copy of a switch segment left as it is: %v\n", err)
	}
	// Nor may it take a placeholder of a promotion that did not happen
	// for its target timeline (chaos finding 20).
	placeholders, err := i.RemoveTimelinePlaceholders()
	if len(placeholders) > 0 {
		fmt.Fprintf(logf, "pgguard: removed the timeline placeholders %s of a promotion that did not happen\n", strings.Join(placeholders, ", "))
	}
	if err != nil {
		logf.Close()
		return fmt.Errorf("remove timeline placeholders: %w", err)
	}
	cmd := exec.Command(i.bin("postgres"), "-D", i.o.DataDir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = i.toolEnv()
	// Own process group: a terminal's Ctrl-C reaches the agent, which
	// then stops PostgreSQL in order. Pdeathsig: if the agent dies, the
	// kernel sends the postmaster SIGQUIT (immediate shutdown), so a
	// primary never outlives the agent that renews its leader lease —
	// otherwise the lease would expire, a standby would be promoted and
	// two primaries would accept writes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	i.o.Account.Apply(cmd)
	if err := pdeath.Start(cmd); err != nil { // the signal follows the process, not a thread
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	i.mu.Lock()
	i.cmd, i.done, i.stopping, i.exitErr = cmd, done, false, nil
	i.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		i.mu.Lock()
		i.exitErr = err
		expected := i.stopping
		i.mu.Unlock()
		close(done)
		if !expected {
			select {
			case i.crashes <- struct{}{}:
			default:
			}
		}
	}()
	return i.waitReady(ctx, done, timeout)
}

func (i *Instance) waitReady(ctx context.Context, done chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("postgres exited during start-up (%v): see %s", i.exitErr, i.o.LogFile)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := i.Connect(pctx)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		last = err
		select {
		case <-done:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("postgres not accepting connections after %s: %v", timeout, last)
}

// Stop shuts the postmaster down: mode "fast" (SIGINT), "immediate"
// (SIGQUIT: no checkpoint, used for fencing) or "smart" (SIGTERM). It
// escalates to immediate and then SIGKILL if the process outlives timeout.
func (i *Instance) Stop(mode string, timeout time.Duration) error {
	i.mu.Lock()
	cmd, done := i.cmd, i.done
	if done == nil {
		i.mu.Unlock()
		return nil
	}
	i.stopping = true
	i.mu.Unlock()
	sig := map[string]syscall.Signal{"fast": syscall.SIGINT, "immediate": syscall.SIGQUIT, "smart": syscall.SIGTERM}[mode]
	if sig == 0 {
		return fmt.Errorf("stop: unknown mode %q (fast, immediate, smart)", mode)
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
	}
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = cmd.Process.Kill()
	<-done
	return errors.New("postgres did not stop in time and was killed")
}

// PID returns the postmaster's process id, or 0.
func (i *Instance) PID() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cmd == nil || i.cmd.Process == nil {
		return 0
	}
	return i.cmd.Process.Pid
}

// clearStaleLock removes postmaster.pid when the process it names is gone
// or is a zombie: a zombie still answers kill(pid, 0), and PostgreSQL would
// refuse to start, believing another postmaster runs.
func (i *Instance) clearStaleLock() error {
	path := filepath.Join(i.o.DataDir, "postmaster.pid")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid == 0 {
		return os.Remove(path)
	}
	if pid < 0 {
		// A single-user server (postgres --single) writes its PID negated:
		// an operator's, or a crash recovery of an earlier agent. Never
		// stopped from here; the start waits for it.
		if st, ok := procfs.ReadStat(-pid); ok && st.Live() && (st.Comm == "postgres" || st.Comm == i.tools().ServerComm()) {
			return fmt.Errorf("postmaster.pid names process %d, a single-user postgres on %s: wait for it to finish or stop it", -pid, i.o.DataDir)
		}
		return os.Remove(path)
	}
	st, ok := procfs.ReadStat(pid)
	if !ok {
		return os.Remove(path) // gone
	}
	if !st.Live() || (st.Comm != "postgres" && st.Comm != "postmaster" && st.Comm != i.tools().ServerComm()) {
		return os.Remove(path)
	}
	// A postmaster left running by an earlier agent on our own data
	// directory: stop it so that the one we start is our child.
	proc, _ := os.FindProcess(pid)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGQUIT} {
		_ = proc.Signal(sig)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if !procfs.Alive(pid) {
				_ = os.Remove(path)
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fmt.Errorf("postmaster.pid names process %d, a live postgres on %s that would not stop: stop it by hand", pid, i.o.DataDir)
}

// CompleteShortCopies completes the short copies of switch segments in
// pg_wal (the package function) when the data directory is in recovery
// (a signal file); a primary's pg_wal is left alone.
func (i *Instance) CompleteShortCopies() ([]string, error) {
	for _, f := range signalFiles {
		if _, err := os.Stat(filepath.Join(i.o.DataDir, f)); err == nil {
			return CompleteShortCopies(filepath.Join(i.o.DataDir, "pg_wal"))
		}
	}
	return nil, nil
}

// signalFiles are the files that start PostgreSQL in recovery.
var signalFiles = []string{"standby.signal", "recovery.signal"}
