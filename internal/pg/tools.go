package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

// Control is what pg_controldata says about a stopped (or running) data
// directory.
type Control struct {
	State         string
	SystemID      string
	Timeline      int
	CheckpointLSN lsn.LSN
}

// Inspect classifies the data directory and reads its control file.
func (i *Instance) Inspect(ctx context.Context) (ha.DataState, Control, string) {
	dir := i.o.DataDir
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return ha.DataEmpty, Control{}, ""
	}
	if err != nil {
		return ha.DataInvalid, Control{}, fmt.Sprintf("cannot read %s: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		return ha.DataInvalid, Control{}, fmt.Sprintf("%s is not empty and has no PG_VERSION: not a PostgreSQL data directory", dir)
	}
	if err := writable(dir); err != nil {
		return ha.DataInvalid, Control{}, err.Error()
	}
	ctl, err := i.Controldata(ctx)
	if err != nil {
		return ha.DataInvalid, Control{}, err.Error()
	}
	return ha.DataValid, ctl, ""
}

// writable checks the data directory accepts a new file (the agent runs as
// the database account, so this is PostgreSQL's view too).
func writable(dir string) error {
	probe := filepath.Join(dir, ".pgguard-write-check")
	if err := os.WriteFile(probe, []byte("ok"), 0o600); err != nil {
		return fmt.Errorf("data directory %s is not writable: %v", dir, err)
	}
	return os.Remove(probe)
}

// Controldata runs pg_controldata and parses the fields the agent needs.
func (i *Instance) Controldata(ctx context.Context) (Control, error) {
	out, err := i.run(ctx, "pg_controldata", "-D", i.o.DataDir)
	if err != nil {
		return Control{}, err
	}
	return ParseControldata(string(out))
}

// ParseControldata reads pg_controldata's output.
func ParseControldata(out string) (Control, error) {
	var c Control
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Database cluster state":
			c.State = v
		case "Database system identifier":
			c.SystemID = v
		case "Latest checkpoint's TimeLineID":
			c.Timeline, _ = strconv.Atoi(v)
		case "Latest checkpoint location":
			c.CheckpointLSN, _ = lsn.Parse(v)
		case "Minimum recovery ending loc's timeline":
			if t, _ := strconv.Atoi(v); t > c.Timeline {
				c.Timeline = t
			}
		}
	}
	if c.State == "" {
		return c, errors.New("pg_controldata printed no cluster state")
	}
	return c, nil
}

// Initdb creates a new data directory with data checksums.
func (i *Instance) Initdb(ctx context.Context) error {
	if err := i.o.Account.MkdirAll(i.o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	args := []string{"-D", i.o.DataDir, "--data-checksums", "-U", i.o.Superuser, "--auth=trust", "-E", "UTF8", "--locale=C"}
	args = append(args, i.o.InitdbArgs...)
	if i.o.SuperPassword != "" {
		// The password reaches initdb through a file, never an argument.
		pw := filepath.Join(filepath.Dir(filepath.Clean(i.o.DataDir)), ".pgguard-initpw")
		if err := os.WriteFile(pw, []byte(i.o.SuperPassword+"\n"), 0o600); err != nil {
			return err
		}
		defer os.Remove(pw)
		if err := i.o.Account.ChownTree(pw); err != nil {
			return err
		}
		args = append(args, "--pwfile="+pw)
	}
	syncfs := syncfsSafe(len(i.o.Programs) > 0, kernelRelease())
	if syncfs {
		args = append(args, "--no-sync") // one syncfs below instead of a fsync per file
	}
	if _, err := i.run(ctx, "initdb", args...); err != nil {
		return err
	}
	if syncfs {
		if err := syncDataDir(i.o.DataDir); err != nil {
			// Unsynced, it must not pass for a bootstrapped directory:
			// the next attempt starts from an empty one (a write error is
			// reported once, so a second syncfs proves nothing).
			i.EmptyDataDir()
			return fmt.Errorf("initdb: %w", err)
		}
	}
	return i.WriteHBA()
}

// CloneFrom fills the empty data directory with a base backup of up.
func (i *Instance) CloneFrom(ctx context.Context, up Upstream) error {
	if err := i.o.Account.MkdirAll(i.o.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	args := []string{"-D", i.o.DataDir, "-X", "stream", "-c", "fast", "-d", i.SuperConninfo(up), "--no-password"}
	syncfs := syncfsSafe(len(i.o.Programs) > 0, kernelRelease())
	if syncfs {
		args = append(args, "--no-sync")
	}
	_, err := i.run(ctx, "pg_basebackup", args...)
	if err == nil && syncfs {
		err = syncDataDir(i.o.DataDir)
	}
	if err != nil {
		// Leave an empty directory so the next attempt starts clean.
		i.EmptyDataDir()
		return fmt.Errorf("clone from %s: %w", up.Name, err)
	}
	return nil
}

// syncDataDir makes what initdb or pg_basebackup wrote durable with one
// syncfs call per file system: the data directory's, and those of pg_wal
// and of each tablespace when they are links to elsewhere (initdb
// --waldir; a clone writes a primary's tablespaces where the primary has
// them). The programs' own sync opens and fsyncs each of a new cluster's
// ~1,000 files in turn (about a second of a clone on the project machine,
// several under load). Only where syncfsSafe; it also writes back
// whatever else is dirty on those file systems.
func syncDataDir(dataDir string) error {
	dirs := []string{dataDir}
	if p, err := filepath.EvalSymlinks(filepath.Join(dataDir, "pg_wal")); err == nil {
		dirs = append(dirs, p)
	}
	links, _ := os.ReadDir(filepath.Join(dataDir, "pg_tblspc"))
	for _, l := range links {
		if p, err := filepath.EvalSymlinks(filepath.Join(dataDir, "pg_tblspc", l.Name())); err == nil {
			dirs = append(dirs, p)
		}
	}
	synced := map[uint64]bool{}
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("stat %s to sync it: %w", d, err)
		}
		if synced[st.Dev] {
			continue
		}
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s to sync it: %w", d, err)
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", d, err)
		}
		synced[st.Dev] = true
	}
	return nil
}

// EmptyDataDir removes everything in the data directory (after a failed
// rebuild, so that the next attempt starts clean).
func (i *Instance) EmptyDataDir() {
	entries, _ := os.ReadDir(i.o.DataDir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(i.o.DataDir, e.Name()))
	}
}

// ErrSourceUnreachable means a rewind or clone could not even reach its
// source: a reason to try again later, not proof that rewind cannot work.
var ErrSourceUnreachable = errors.New("source unreachable")

// Rewind runs pg_rewind against up after making up checkpoint, so that
// its control file shows the timeline it was promoted to.
func (i *Instance) Rewind(ctx context.Context, up Upstream) (string, error) {
	conn, err := ConnectTo(ctx, i.SuperConninfo(up))
	if err != nil {
		return "", fmt.Errorf("connect to %s before rewind: %w: %w", up.Name, ErrSourceUnreachable, err)
	}
	_, cerr := conn.Exec(ctx, "CHECKPOINT")
	conn.Close(context.Background())
	if cerr != nil {
		return "", fmt.Errorf("checkpoint on %s before rewind: %w: %w", up.Name, ErrSourceUnreachable, cerr)
	}
	args := []string{"-D", i.o.DataDir, "--source-server=" + i.SuperConninfo(up), "--no-sync"}
	if i.o.RestoreCommand != "" {
		// WAL the target recycled since the fork comes from the archive.
		args = append(args, "--restore-target-wal")
	}
	out, err := i.run(ctx, "pg_rewind", args...)
	if err != nil {
		if strings.Contains(string(out), "could not connect") || strings.Contains(string(out), "server closed the connection") {
			err = fmt.Errorf("%w: %w", ErrSourceUnreachable, err)
		}
		return string(out), fmt.Errorf("rewind from %s: %w", up.Name, err)
	}
	return lastLines(string(out), 3), nil
}

// CrashRecover runs single-user mode on a crashed data directory so that it
// completes crash recovery and shuts down cleanly, as pg_rewind requires.
// Nothing can connect to it meanwhile.
func (i *Instance) CrashRecover(ctx context.Context) error {
	if err := i.clearStaleLock(); err != nil {
		return err
	}
	i.EndOrphans(5 * time.Second) // a single-user server checks the old shared memory too
	// A single-user server refuses the signal files ("standby mode is not
	// supported by single-user servers"), and a former primary can hold
	// one: the agent wrote standby.signal for a start as a standby that
	// failed (its WAL had diverged). Crash recovery replays the local WAL
	// only, whatever the role; the next start writes the file its role
	// needs.
	for _, f := range signalFiles {
		if err := os.Remove(filepath.Join(i.o.DataDir, f)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("single-user crash recovery: remove %s: %w", f, err)
		}
	}
	cmd := i.command(ctx, "postgres", "--single", "-D", i.o.DataDir,
		"-c", "archive_mode=off", "-c", "hot_standby=off", "-c", "listen_addresses=", "template1")
	cmd.Stdin = nil
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	cmd.Stdin = devnull
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("single-user crash recovery: %w: %s", err, lastLines(out.String(), 5))
	}
	return nil
}

// MoveDataAside renames the data directory to <dir>.failed-<time> (keeping
// only the newest such copy) and leaves an empty directory in its place.
// An empty or missing directory is not moved ("" is returned): it would
// replace the copy kept by an earlier attempt.
func (i *Instance) MoveDataAside(now time.Time) (string, error) {
	dir := filepath.Clean(i.o.DataDir)
	if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 || errors.Is(err, os.ErrNotExist) {
		return "", i.o.Account.MkdirAll(dir, 0o700)
	}
	old, _ := filepath.Glob(dir + ".failed-*")
	for _, o := range old {
		_ = os.RemoveAll(o)
	}
	aside := dir + ".failed-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("move data directory aside: %w", err)
	}
	if err := i.o.Account.MkdirAll(dir, 0o700); err != nil {
		return aside, err
	}
	return aside, nil
}
