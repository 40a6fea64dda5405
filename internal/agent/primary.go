package agent

import (
	"context"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/backup/wal"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
)

// reserveTimeline claims, in the store, a timeline above every one a
// promotion has used or this node has seen, and makes PostgreSQL choose it:
// two promotions must never pick the same timeline ID, or a node rejoining
// from the other one would skip a rewind it needs.
func (a *Agent) reserveTimeline(ctx context.Context, o ha.Observation) error {
	seen := max(o.Local.Timeline, o.Local.ControlTLI, a.pg.HighestHistory())
	next := max(o.Cluster.MaxTimeline, seen) + 1
	if err := a.store.ReserveTimeline(ctx, next); err != nil {
		return err
	}
	return a.pg.SkipTimelines(max(o.Local.Timeline, o.Local.ControlTLI), next-1)
}

// handOver is the primary's side of a switchover: a clean shutdown, then
// a bounded wait until the candidate has received the shutdown checkpoint
// (so it has every commit). What it found goes to the memory; the next
// Decide releases the leader key to the candidate or, if it did not catch
// up, withdraws the switchover and starts the primary again.
//
// The wait starts when the control file says "shut down", not when the
// postmaster exits: past its shutdown checkpoint PostgreSQL has no
// backend, lets none in and writes no WAL, but still waits for its
// archiver to archive the last segment (with the stream on, for the
// stream to store it) and for its WAL senders, a few hundred
// milliseconds that need not be part of the outage. The postmaster then
// finishes its stop beside the release (awaitHandOverStop).
func (a *Agent) handOver(ctx context.Context, o ha.Observation, act ha.Action, out *ha.Outcome) error {
	to := act.Target
	up, err := a.upstream(o, to)
	if err != nil {
		return err
	}
	// The lease is renewed all through: a clean shutdown under load, or a
	// candidate slow to confirm, can outlast ttl - safety_margin, and the
	// watchdog would then fence the shutdown before its checkpoint.
	return a.keepingLease(ctx, func() error {
		// The connection that asks the candidate how far it received is
		// opened now, beside the checkpoint and the shutdown: a login
		// (TLS and SCRAM) is otherwise tens of milliseconds of the
		// outage, more on a busy host.
		cand := dialCandidate(ctx, a.pg.SuperConninfo(*up))
		defer cand.close()
		// A checkpoint while the primary still takes writes: the
		// shutdown checkpoint, inside the outage, then has little left.
		a.checkpointBeforeStop(ctx)
		a.pushReadyBeforeStop(ctx, uint32(o.Local.Timeline))
		a.setVIP(ctx, false)
		a.record(ctx, ha.EventSwitchoverStop, to, "stopping the primary cleanly for the switchover", "started")
		stopped := make(chan error, 1)
		go func() { stopped <- a.stopForHandOver() }()
		ctl, exited, err := a.awaitShutdownCheckpoint(ctx, stopped)
		if err != nil {
			return err // the postmaster exited: the stop's or pg_controldata's error
		}
		if ctl.State != ha.ControlShutDown {
			// Exited without its shutdown checkpoint (a fast stop that
			// ran out of time and was ended with SIGQUIT): the control
			// file's checkpoint is an older one, and a candidate past it
			// may lack commits. Withdrawn, as for a candidate behind.
			a.log.Warn("the switchover's clean stop ended without a shutdown checkpoint; the switchover is withdrawn", "control_state", ctl.State)
			out.HandOver = &ha.HandOverState{To: to, Checkpoint: ctl.CheckpointLSN}
			return nil
		}
		out.HandOver = a.awaitCandidate(ctx, cand, to, ctl.CheckpointLSN)
		if exited || !out.HandOver.CaughtUp {
			// Withdrawn: the primary starts again once it is down.
			if !exited {
				if err := <-stopped; err != nil {
					return err
				}
			}
			return nil
		}
		a.handOverStop = stopped
		a.log.Info("shutdown checkpoint received by the candidate; the postmaster finishes its stop beside the release",
			"candidate", to, "checkpoint", ctl.CheckpointLSN)
		return nil
	})
}

// awaitShutdownCheckpoint polls the control file until it says "shut
// down" (or the postmaster exited, stopped delivering its result), and
// returns it with whether the postmaster exited. An error is the stop's.
func (a *Agent) awaitShutdownCheckpoint(ctx context.Context, stopped <-chan error) (pg.Control, bool, error) {
	tick := time.NewTicker(5 * time.Millisecond) // polling the control file
	defer tick.Stop()
	for {
		select {
		case err := <-stopped:
			if err != nil {
				return pg.Control{}, true, err
			}
			ctl, err := a.pg.Controldata(ctx)
			return ctl, true, err
		case <-tick.C:
		}
		if ctl, err := a.pg.ControlFile(ctx); err == nil && ctl.State == ha.ControlShutDown {
			return ctl, false, nil
		}
	}
}

// awaitHandOverStop waits for the clean stop a hand-over left to finish
// beside the release, so that the next loop sees PostgreSQL down.
func (a *Agent) awaitHandOverStop() {
	if a.handOverStop == nil {
		return
	}
	start := time.Now()
	if err := <-a.handOverStop; err != nil {
		a.log.Warn("the switchover's clean stop", "err", err)
	}
	a.handOverStop = nil
	a.log.Info("postmaster stopped after the hand-over", "waited", time.Since(start).Round(time.Millisecond))
}

// streamDrainWait bounds how long a switchover's clean shutdown may wait
// for the WAL stream.
const streamDrainWait = 3 * time.Second

// stopForHandOver shuts the primary down cleanly with the WAL stream still
// running: the stream stores the segments the archiver is about to ask
// for (wal-push then only confirms them, without opening the repository)
// and answers the walsender's last request at once with the tail up to
// the shutdown checkpoint. If the shutdown still runs after
// streamDrainWait (a slow repository), the stream ends, the walsender
// with it, and the archiver pushes what remains by itself.
func (a *Agent) stopForHandOver() error {
	stopped := make(chan error, 1)
	go func() { stopped <- a.pg.Stop("fast", 60*time.Second) }()
	var err error
	select {
	case err = <-stopped:
	case <-time.After(streamDrainWait):
		if a.streaming() {
			a.log.Warn("the clean shutdown waits for the WAL stream; stopping the stream", "after", streamDrainWait)
		}
		a.stopStream()
		err = <-stopped
	}
	a.stopStream()
	return err
}

// checkpointBeforeStop runs CHECKPOINT on the primary, for at most 30 s.
// A failure only costs a longer shutdown checkpoint.
func (a *Agent) checkpointBeforeStop(ctx context.Context) {
	if a.conn == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := pg.Checkpoint(cctx, a.conn); err != nil {
		a.log.Warn("checkpoint before the switchover's shutdown failed", "err", err)
		return
	}
	a.log.Info("checkpoint before the switchover's shutdown", "took", time.Since(start).Round(time.Millisecond))
}

// pushReadyBeforeStop archives what PostgreSQL marked ready and neither
// the WAL stream nor a push has stored yet, with the repository the agent
// keeps open, for at most pushReadyWait: the clean shutdown waits for the
// archiver to archive every ready file, and each archive_command that
// finds no record starts the whole pgguard and opens the repository (a
// key derivation), about half a second each, seconds on a busy host. The
// checkpoint before the stop is what marks an older timeline's leftover
// segments ready (see wal.timelineTail), so this runs after it; those the
// shutdown checkpoint will mark are pushed too (wal.PushReady).
func (a *Agent) pushReadyBeforeStop(ctx context.Context, tli uint32) {
	if !a.streamEnabled() {
		return
	}
	start := time.Now()
	r, err := a.openWAL(ctx)
	if err != nil {
		a.log.Warn("push ready WAL before the switchover's shutdown: open the repository", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, pushReadyWait)
	defer cancel()
	res := wal.PushReady(pctx, r, filepath.Join(a.cfg.Postgres.DataDir, "pg_wal"), tli)
	for n, err := range res.AheadFailed {
		a.log.Warn("push ready WAL before the switchover's shutdown", "file", n, "err", err)
	}
	if len(res.Ahead) > 0 {
		a.log.Info("pushed ready WAL before the switchover's shutdown", "files", len(res.Ahead), "took", time.Since(start).Round(time.Millisecond))
	}
	if res.Kept != "" {
		a.log.Info("push: " + res.Kept)
	}
}

// pushReadyWait bounds pushReadyBeforeStop; what it leaves is
// archive_command's.
const pushReadyWait = 2 * time.Second

// awaitCandidate polls the candidate's received position until it is past
// the shutdown checkpoint, for at most handOverWait (10 s when 0).
func (a *Agent) awaitCandidate(ctx context.Context, cand *candidateConn, to string, checkpoint lsn.LSN) *ha.HandOverState {
	h := &ha.HandOverState{To: to, Checkpoint: checkpoint}
	probe, wait := a.candidatePosition, a.handOverWait
	if probe == nil {
		probe = cand.received
	}
	if wait <= 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && !h.CaughtUp {
		last, err := probe(ctx, cand.conninfo)
		if err == nil {
			h.Received = last
		}
		h.CaughtUp = err == nil && last > checkpoint
		if !h.CaughtUp {
			time.Sleep(10 * time.Millisecond) // polling the candidate's position
		}
	}
	return h
}

// candidateConn asks a switchover's candidate how far it received, over
// one connection opened before it is needed and opened again when it
// breaks.
type candidateConn struct {
	conninfo string
	ready    chan struct{} // closed when the first attempt to connect ended
	conn     *pgx.Conn     // nil when it failed or broke
}

// dialCandidate starts connecting to the candidate (for at most 5 s).
func dialCandidate(ctx context.Context, conninfo string) *candidateConn {
	c := &candidateConn{conninfo: conninfo, ready: make(chan struct{})}
	go func() {
		defer close(c.ready)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if conn, err := pg.ConnectTo(cctx, conninfo); err == nil {
			c.conn = conn
		}
	}()
	return c
}

// received is the candidate's pg_last_wal_receive_lsn().
func (c *candidateConn) received(ctx context.Context, conninfo string) (lsn.LSN, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if c.conn == nil || c.conn.IsClosed() {
		conn, err := pg.ConnectTo(cctx, conninfo)
		if err != nil {
			return 0, err
		}
		c.conn = conn
	}
	var s *string
	if err := c.conn.QueryRow(cctx, `SELECT pg_last_wal_receive_lsn()::text`).Scan(&s); err != nil {
		c.conn.Close(context.Background())
		c.conn = nil
		return 0, err
	}
	if s == nil {
		return 0, nil // nothing received yet: the connection is fine
	}
	return lsn.Parse(*s)
}

func (c *candidateConn) close() {
	<-c.ready
	if c.conn != nil {
		c.conn.Close(context.Background())
	}
}

// setSyncNames changes synchronous_standby_names and reloads.
func (a *Agent) setSyncNames(ctx context.Context, o ha.Observation, act ha.Action, out *ha.Outcome) error {
	names := ha.SyncNames{Method: o.Cluster.Config.SyncMethod, Count: act.Quorum, Members: act.Members, Wildcard: act.Wildcard}
	if err := a.pg.SetSyncNames(names.String()); err != nil {
		return err
	}
	if err := a.reload(ctx); err != nil {
		return err
	}
	out.SyncChanged, out.WalLSN = true, o.Local.WalLSN
	return nil
}

// primeSyncNames makes a primary that starts in a synchronous mode wait
// for standbys from its first commit, even when this agent has just
// started and has set no synchronous_standby_names yet: the standbys the
// store's sync key names for this leader, or else any one standby, until
// ha.Decide chooses the set.
func (a *Agent) primeSyncNames(o ha.Observation, out *ha.Outcome) error {
	cfg := o.Cluster.Config
	if !cfg.Synchronous() || a.pg.SyncNames() != "" {
		return nil
	}
	names := ha.SyncNames{Method: "any", Count: 1, Wildcard: true}
	if s := o.Cluster.Sync; s != nil && s.Leader == a.cfg.Name && len(s.Standbys()) > 0 {
		names = ha.SyncNames{Method: cfg.SyncMethod, Count: max(s.Quorum, 1), Members: s.Standbys()}
	}
	if err := a.pg.SetSyncNames(names.String()); err != nil {
		return err
	}
	out.SyncChanged, out.WalLSN = true, o.Local.WalLSN
	return nil
}

// renew refreshes the leader lease while a long step runs, and
// remembers the outcome (the fencing deadline moves with it).
func (a *Agent) renew(ctx context.Context) {
	out := ha.Outcome{Action: ha.Action{Kind: ha.RenewLeader}, At: time.Now()}
	out.OK = a.renewInto(ctx, 0, &out) == nil
	a.remember(out)
}

// keepingLease runs fn (a slow start of the primary) while renewing the
// leader lease every loop interval, so the key survives a restart in place.
func (a *Agent) keepingLease(ctx context.Context, fn func() error) error {
	a.mu.Lock()
	holds := a.mem.HoldsLeader
	a.mu.Unlock()
	if !holds {
		return fn()
	}
	defer a.everyLoop(ctx, a.renew)()
	return fn()
}

func (a *Agent) finishInit(ctx context.Context) error {
	conn, err := a.pg.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	p := a.cfg.Postgres
	if err := pg.CreateReplicationRole(ctx, conn, p.Replication.Username, p.Replication.Password); err != nil {
		return err
	}
	st, err := pg.Probe(ctx, conn)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
	defer cancel()
	h := a.cfg.HA
	seed := ha.DefaultClusterConfig()
	seed.Mode, seed.SyncCount, seed.SyncTimeoutMs = ha.Mode(h.ReplicationMode), h.SyncCount, h.SyncTimeout.D().Milliseconds()
	if err := a.store.SeedConfig(sctx, seed); err != nil {
		return err
	}
	return a.store.FinishInit(sctx, st.SystemID)
}
