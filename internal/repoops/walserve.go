package repoops

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/walspool"
)

// restore_command served for a data directory no agent manages: a
// restored copy, a drill's. PostgreSQL runs restore_command once per file,
// and each pgguard wal-fetch starts the whole binary and opens the
// repository: 50-100 ms a call, about six calls from a restored copy's
// start to its first write. The first pgguard wal-fetch in such a
// directory starts a wal-serve beside the server (StartWALServer); it
// keeps the repository open and answers pgguard-wal's later calls over
// the data directory's socket (walspool.FetchServer, as an agent does),
// and ends once no call came for a while.

// WALServeIdle is how long a wal-serve waits for the next call before it
// ends. A copy replaying from the archive calls every few seconds (a
// standby without a primary every wal_retrieve_retry_interval, 5 s).
const WALServeIdle = time.Minute

// walServeLimit bounds one request (pgguard-wal gives up 10 s later and
// runs pgguard).
const walServeLimit = 2 * time.Minute

// ServeWAL answers restore_command for dataDir from the repository of s
// (its ConfigPath must be set: pgguard-wal's requests name it) until ctx
// ends, no request came for idle, or dataDir is gone. Another server
// already listening for dataDir is not an error: ServeWAL then returns at
// once.
func ServeWAL(ctx context.Context, s reposettings.Settings, dataDir string, idle time.Duration) error {
	if s.ConfigPath == "" {
		return badinput.Errorf("wal-serve: give the node configuration with -c (restore_command's -c)")
	}
	if idle <= 0 {
		return badinput.Errorf("wal-serve: --idle %s: give a positive duration", idle)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return badinput.Errorf("wal-serve: --pgdata %q: %v", dataDir, err)
	}
	if _, err := os.Stat(filepath.Join(abs, "PG_VERSION")); err != nil {
		return badinput.Errorf("wal-serve: %s is not a PostgreSQL data directory (no PG_VERSION)", abs)
	}
	s.DataDir = abs
	var (
		mu       sync.Mutex
		r        *repo.Repository
		inFlight int
		last     = time.Now()
	)
	open := func(ctx context.Context) (*repo.Repository, error) {
		mu.Lock()
		defer mu.Unlock()
		if r != nil {
			return r, nil
		}
		opened, err := s.OpenWAL(ctx)
		if err != nil {
			return nil, err
		}
		r = opened
		return r, nil
	}
	srv := &walspool.FetchServer{DataDir: abs, Config: s.ConfigPath, Limit: walServeLimit,
		Fetch: func(ctx context.Context, name, dest string) (bool, error) {
			mu.Lock()
			inFlight++
			mu.Unlock()
			defer func() {
				mu.Lock()
				inFlight--
				last = time.Now()
				mu.Unlock()
			}()
			res, err := WALFetchFrom(ctx, s, WALFetchRequest{Name: name, Dest: dest, Prefetch: 4}, open)
			return res.Found, err
		},
	}
	ln, err := srv.Listen()
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil // another wal-serve (or the agent) answers for dataDir
	}
	if err != nil {
		return fmt.Errorf("wal-serve: listen for %s: %w", abs, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		if r != nil {
			r.Close(context.WithoutCancel(ctx))
		}
	}()
	wg.Go(func() {
		// Opened now, while PostgreSQL replays what the first call
		// fetched; a failure is tried again at the next request.
		_, _ = open(sctx)
	})
	wg.Go(func() {
		tick := time.NewTicker(max(idle/10, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			quiet := inFlight == 0 && time.Since(last) >= idle
			mu.Unlock()
			if _, err := os.Stat(filepath.Join(abs, "PG_VERSION")); quiet || err != nil {
				cancel()
				return
			}
		}
	})
	return srv.Serve(sctx, ln)
}

// StartWALServer starts exe's wal-serve for the data directory that is
// the working directory (PostgreSQL runs restore_command there), in its
// own session with no inherited output (PostgreSQL's log collector reads
// restore_command's output until every writer is gone), when the
// configuration at s.ConfigPath does not manage that directory (its agent
// serves restore_command) and nothing answers for it yet. It reports
// whether it started one; failing to is not an error of the call that
// asks (the next call tries again).
func StartWALServer(s reposettings.Settings, exe string) bool {
	if s.ConfigPath == "" || os.Getenv(walServeOff) != "" {
		return false
	}
	dir, err := os.Getwd()
	if err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		return false
	}
	if s.Config != nil && samePath(s.Config.Postgres.DataDir, dir) {
		return false
	}
	if c, err := net.DialTimeout("unix", walspool.FetchSocket(dir), time.Second); err == nil {
		c.Close()
		return false
	}
	config, err := filepath.Abs(s.ConfigPath)
	if err != nil {
		return false
	}
	// Descriptors inherited without close-on-exec must not live on in the
	// server for a minute: a log collector's pipe would keep the collector
	// running (PostgreSQL 15 marks its own close-on-exec; other callers of
	// restore_command, such as pg_rewind --restore-target-wal, may not).
	// This process ends right after, so its own need none either.
	_ = unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	cmd := exec.Command(exe, "wal-serve", "-c", config, "--pgdata", dir)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false
	}
	_ = cmd.Process.Release()
	return true
}

// walServeOff, set in restore_command's environment, keeps pgguard
// wal-fetch from starting a wal-serve.
const walServeOff = "PGGUARD_NO_WAL_SERVE"

// samePath reports whether a and b name the same directory.
func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	sa, ea := os.Stat(a)
	sb, eb := os.Stat(b)
	return ea == nil && eb == nil && os.SameFile(sa, sb)
}
