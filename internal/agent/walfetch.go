package agent

import (
	"context"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/walspool"
)

// walRepo is the repository opened for WAL (repo.Runtime.WALOnly), shared
// by the WAL stream and the restore_command server and kept open for the
// agent's life: one key derivation, not one per segment or per call.
type walRepo struct {
	mu sync.Mutex
	r  *repo.Repository
	// stopServer ends the restore_command server and waits for it.
	stopServer func()
}

// openWAL returns the agent's WAL repository, opening it the first time.
func (a *Agent) openWAL(ctx context.Context) (*repo.Repository, error) {
	a.wal.mu.Lock()
	defer a.wal.mu.Unlock()
	if a.wal.r != nil {
		return a.wal.r, nil
	}
	s, err := a.repository()
	if err != nil {
		return nil, err
	}
	r, err := s.OpenWAL(ctx)
	if err != nil {
		return nil, err
	}
	a.wal.r = r
	return r, nil
}

// closeWAL stops the restore_command server and closes the WAL
// repository (agent exit, PostgreSQL stopped, the stream ended).
func (a *Agent) closeWAL() {
	if a.wal.stopServer != nil {
		a.wal.stopServer()
	}
	a.wal.mu.Lock()
	r := a.wal.r
	a.wal.r = nil
	a.wal.mu.Unlock()
	if r != nil {
		r.Close(context.Background())
	}
}

// fetchAhead is how many segments the agent prefetches after one it
// serves (pgguard wal-fetch: 4). Without a process start and a key
// derivation per call, one fetch ahead of replay keeps a catch-up from
// the archive fed; each segment in flight is 16 MiB and more of the
// agent's heap, which, unlike a wal-fetch process's, stays.
const fetchAhead = 2

// fetchLimit bounds one restore_command request the agent serves; the
// client gives up a little later and runs pgguard.
const fetchLimit = 2 * time.Minute

// serveRestoreCommand starts answering pgguard-wal's restore_command
// requests for this node's data directory (walspool.AskAgent), with the
// same answers pgguard wal-fetch gives, from the repository this agent
// keeps open. It runs when restore_command is the default one.
func (a *Agent) serveRestoreCommand(ctx context.Context) {
	if !a.cfg.Archive.Enabled || a.cfg.Archive.Restore != "" || a.cfg.Repository.URL == "" || a.configPath == "" {
		return
	}
	dataDir := a.cfg.Postgres.DataDir
	srv := &walspool.FetchServer{DataDir: dataDir, Config: a.configPath, Limit: fetchLimit,
		Fetch: func(ctx context.Context, name, dest string) (bool, error) {
			s, err := a.repository()
			if err != nil {
				return false, err
			}
			s.DataDir = dataDir
			res, err := repoops.WALFetchFrom(ctx, s, repoops.WALFetchRequest{Name: name, Dest: dest, Prefetch: fetchAhead}, a.openWAL)
			return res.Found, err
		},
		Answered: func(answer string, err error) { a.metrics.restoreServed(answer, err) },
	}
	ln, err := srv.Listen()
	if err != nil {
		// pgguard-wal then runs pgguard, as without this server.
		a.log.Warn("restore_command server not started; each call opens the repository itself", "err", err)
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Opened now, not at the first segment asked for: that may be the
		// end of recovery of a promotion, which would wait for the
		// repository's open (a key derivation with a passphrase). A
		// failure is retried at that first fetch.
		if _, err := a.openWAL(sctx); err != nil && sctx.Err() == nil {
			a.log.Warn("WAL repository not opened; restore_command will try again", "err", err)
		}
	})
	wg.Go(func() {
		if err := srv.Serve(sctx, ln); err != nil {
			a.log.Warn("restore_command server stopped; each call opens the repository itself", "err", err)
		}
	})
	a.wal.stopServer = func() { cancel(); wg.Wait() }
}
