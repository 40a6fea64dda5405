package agent

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/api"
	"github.com/pgguard/pgguard/internal/backup/wal"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/walstream"
)

// walStream runs internal/walstream while this node is the primary
// holding the lease, into the agent's WAL repository (openWAL), open
// across runs: one key derivation for the agent's life, not one per
// segment.
type walStream struct {
	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	progress walstream.Progress // what the runs stored, for the next run
}

// streamEnabled: archiving into the repository with the default commands,
// and the stream not turned off.
func (a *Agent) streamEnabled() bool {
	c := a.cfg
	return c.Archive.Enabled && !c.Archive.NoStream && c.Repository.URL != "" && a.configPath != ""
}

// steerStream starts or stops the WAL stream after a loop's actions. It
// runs only on the primary holding the lease, and not while
// synchronous_standby_names is '*' (any standby: the stream would count
// as one and commits would wait for the repository).
func (a *Agent) steerStream(ctx context.Context, obs ha.Observation) {
	if !a.streamEnabled() {
		return
	}
	want := a.streamWanted(obs)
	a.stream.mu.Lock()
	running := a.stream.cancel != nil
	a.stream.mu.Unlock()
	switch {
	case want && !running:
		a.startStream(ctx)
	case !want && running:
		a.stopStream()
	}
}

// streamWanted reports whether the stream should run on this node now.
func (a *Agent) streamWanted(obs ha.Observation) bool {
	now := time.Now()
	return a.streamEnabled() && api.NodeFrom(obs, now, a.writableUntil(), false).Role(now) == "primary" && a.pg.Running() &&
		!ha.ParseSyncNames(a.pg.SyncNames()).Wildcard
}

// streaming reports whether the stream runs.
func (a *Agent) streaming() bool {
	a.stream.mu.Lock()
	defer a.stream.mu.Unlock()
	return a.stream.cancel != nil
}

func (a *Agent) startStream(ctx context.Context) {
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	a.stream.mu.Lock()
	a.stream.cancel, a.stream.done = cancel, done
	a.stream.mu.Unlock()
	a.log.Info("WAL stream starting", "slot", pg.ArchiveSlot)
	go func() {
		defer close(done)
		for sctx.Err() == nil {
			err := a.runStream(sctx)
			if sctx.Err() != nil {
				return
			}
			a.log.Warn("WAL stream stopped; starting again in 1s (archive_command still archives)", "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-sctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}()
}

func (a *Agent) runStream(ctx context.Context) error {
	r, err := a.openWAL(ctx)
	if err != nil {
		return err
	}
	dataDir := a.cfg.Postgres.DataDir
	return walstream.Run(ctx, r, walstream.Options{
		ConnString: a.pg.LocalConninfo(),
		Slot:       pg.ArchiveSlot,
		SpoolDir:   filepath.Join(dataDir, "pg_wal", wal.SpoolName, "push"),
		Log:        a.log,
		Progress:   &a.stream.progress,
		Stored: func(name string, tail bool, upTo lsn.LSN) {
			a.log.Debug("WAL stream stored", "file", name, "tail", tail, "up_to", upTo.String())
		},
	})
}

// stopStream stops the stream and waits (at most 5 s) for it to end.
func (a *Agent) stopStream() {
	a.stream.mu.Lock()
	cancel, done := a.stream.cancel, a.stream.done
	a.stream.cancel, a.stream.done = nil, nil
	a.stream.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		a.log.Warn("WAL stream did not stop within 5s")
	}
	a.log.Info("WAL stream stopped")
}
