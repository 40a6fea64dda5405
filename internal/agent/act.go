package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/pg"
)

// errStopPlan ends a plan without it being a failure (a lost race).
var errStopPlan = errors.New("plan stopped")

// execute runs a plan's steps in order, stopping at the first failure.
// Steps that change roles or data are recorded in the cluster history.
func (a *Agent) execute(ctx context.Context, o ha.Observation, plan ha.Plan) {
	for _, act := range plan {
		if ctx.Err() != nil {
			return
		}
		if act.Kind == ha.Wait {
			if act.Reason != a.lastWaitReason {
				a.log.Info("waiting", "reason", act.Reason)
				a.lastWaitReason = act.Reason
			}
			continue
		}
		a.lastWaitReason = ""
		started := time.Now()
		stopKeepAlive := a.keepMemberAlive(ctx)
		err := a.step(ctx, o, act)
		stopKeepAlive()
		took := time.Since(started).Round(time.Millisecond)
		switch {
		case errors.Is(err, errStopPlan):
			a.log.Info("step not taken", "step", act.String(), "took", took)
			return
		case errors.Is(err, dcs.ErrChanged):
			// A lost race, not a failure: decide again on a fresh read.
			a.log.Info("step not taken: the store changed since it was read", "step", act.String(), "took", took, "err", err)
			a.again = true
			return
		case err != nil:
			a.log.Error("step failed", "step", act.String(), "took", took, "err", err)
			if act.Destructive() {
				a.record(ctx, string(act.Kind), act.Target, act.Reason, "failed: "+err.Error())
			}
			return
		}
		if act.Destructive() {
			a.again = true
			a.log.Info("step done", "step", act.String(), "took", took)
			a.record(ctx, string(act.Kind), act.Target, act.Reason, fmt.Sprintf("ok in %s", took))
		}
	}
}

// keepMemberAlive refreshes the member lease every loop interval until the
// returned function is called, so a long step (initdb, clone, rewind) does
// not let this agent's status, or its bootstrap claim, expire.
func (a *Agent) keepMemberAlive(ctx context.Context) func() {
	return a.everyLoop(ctx, func(sctx context.Context) { _ = a.store.KeepMemberAlive(sctx) })
}

// everyLoop runs fn (with the store timeout) every loop interval until the
// returned function is called or ctx ends; the returned function waits for
// a run in progress to finish.
func (a *Agent) everyLoop(ctx context.Context, fn func(context.Context)) func() {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(a.cfg.HA.LoopInterval.D())
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				sctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
				fn(sctx)
				cancel()
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// upstream finds where member name's PostgreSQL listens. A member that
// advertises a host outside the configured peers is refused: whoever can
// write a member record must not be able to point this node's replication,
// and its password, somewhere else.
func (a *Agent) upstream(o ha.Observation, name string) (*pg.Upstream, error) {
	if name == "" {
		return nil, nil
	}
	m, ok := o.Cluster.Members[name]
	if !ok || m.Host == "" {
		return nil, fmt.Errorf("member %s has published no address", name)
	}
	if trusted := a.cfg.TrustedHosts(); len(trusted) > 0 && !slices.Contains(trusted, m.Host) {
		return nil, fmt.Errorf("member %s advertises host %s, which is not one of the configured peers (%s): not connecting to it", name, m.Host, strings.Join(trusted, ", "))
	}
	return &pg.Upstream{Name: name, Host: m.Host, Port: m.Port}, nil
}

func (a *Agent) step(ctx context.Context, o ha.Observation, act ha.Action) error {
	sctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
	defer cancel()
	switch act.Kind {
	case ha.ClaimInit:
		ok, err := a.store.ClaimInit(sctx)
		if err != nil {
			return err
		}
		if !ok {
			return errStopPlan
		}
		a.record(ctx, string(act.Kind), "", "won the bootstrap race", "ok")
		return nil
	case ha.Initdb:
		return a.pg.Initdb(ctx)
	case ha.FinishInit:
		return a.finishInit(ctx)
	case ha.AcquireLeader:
		ok, sent, err := a.store.AcquireLeader(sctx)
		if err != nil {
			return err
		}
		if !ok {
			return errStopPlan
		}
		a.mu.Lock()
		a.mem.HoldsLeader, a.mem.LastRenew = true, sent
		a.mu.Unlock()
		return nil
	case ha.RenewLeader:
		optime := ha.OptimeDue(o, a.optime, a.optimeAt, o.Local.WalLSN)
		if err := a.renew(sctx, optime); err != nil {
			return err
		}
		if optime != 0 {
			a.optime, a.optimeAt = optime, o.Now
		}
		return nil
	case ha.ReleaseLeader:
		a.setVIP(ctx, false)
		a.mu.Lock()
		a.mem.HoldsLeader = false
		a.mu.Unlock()
		return a.store.ReleaseLeader(sctx)
	case ha.StartPrimary:
		if err := a.primeSyncNames(o); err != nil {
			return err
		}
		if err := a.pg.WriteConfig(true, nil); err != nil {
			return err
		}
		a.following, a.followingSince = "", time.Time{}
		return a.keepingLease(ctx, func() error { return a.pg.Start(ctx, a.cfg.HA.PrimaryStartTimeout.D()) })
	case ha.StartStandby:
		up, err := a.upstream(o, act.Target)
		if err != nil {
			return err
		}
		if err := a.pg.WriteConfig(false, up); err != nil {
			return err
		}
		a.following, a.followingSince = act.Target, time.Now()
		// A leader restarting in recovery (to promote) keeps its lease.
		if err := a.keepingLease(ctx, func() error { return a.pg.Start(ctx, 60*time.Second) }); err != nil {
			if !a.pg.Running() {
				a.mu.Lock()
				a.mem.StartFailures++
				a.mu.Unlock()
			}
			return err
		}
		a.mu.Lock()
		a.mem.StartFailures = 0
		a.mu.Unlock()
		// Slots kept from a time as primary would pin WAL on a standby.
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		defer dcancel()
		if conn, err := a.pg.Connect(dctx); err == nil {
			_ = pg.DropAllSlots(dctx, conn)
			conn.Close(context.Background())
		}
		return nil
	case ha.Follow:
		up, err := a.upstream(o, act.Target)
		if err != nil {
			return err
		}
		if err := a.pg.WriteConfig(false, up); err != nil {
			return err
		}
		if a.conn == nil {
			return errors.New("no connection to the local instance")
		}
		if err := pg.Reload(sctx, a.conn); err != nil {
			return err
		}
		a.following, a.followingSince = act.Target, time.Now()
		// Slots left from a time as primary would hold WAL forever.
		return pg.DropAllSlots(sctx, a.conn)
	case ha.Promote:
		if a.conn == nil {
			return errors.New("no connection to the local instance")
		}
		pctx, pcancel := context.WithTimeout(ctx, 70*time.Second)
		defer pcancel()
		if err := pg.Promote(pctx, a.conn); err != nil {
			return err
		}
		a.following, a.followingSince = "", time.Time{}
		if err := a.pg.WriteConfig(true, nil); err != nil {
			return err
		}
		return pg.Reload(pctx, a.conn)
	case ha.Fence:
		// The stop first: nothing may delay it (the address follows at
		// once; see the watchdog).
		a.mu.Lock()
		a.mem.HoldsLeader = false
		a.mu.Unlock()
		wasRunning := a.pg.Running()
		err := a.pg.Stop("immediate", 5*time.Second)
		a.setVIP(ctx, false)
		if wasRunning {
			a.cb.enqueue(callback{event: "on_fence", role: ha.RoleNone, prev: callbackRole(o.Local)})
		}
		return err
	case ha.Stop:
		a.setVIP(ctx, false)
		return a.pg.Stop("fast", 60*time.Second)
	case ha.CrashRecover:
		return a.pg.CrashRecover(ctx)
	case ha.Rewind:
		up, err := a.upstream(o, act.Target)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.mem.LastRewind = time.Now()
		a.mu.Unlock()
		out, err := a.pg.Rewind(ctx, *up)
		if err != nil {
			// Only a rewind that ran and failed against a reachable source
			// leads to a rebuild; an unreachable source is retried.
			if !errors.Is(err, pg.ErrSourceUnreachable) {
				a.rewindFailedFor = act.Target
			}
			return err
		}
		a.rewindFailedFor = ""
		a.mu.Lock()
		a.mem.StartFailures = 0
		a.mu.Unlock()
		a.log.Info("pg_rewind", "output", out)
		// History files of timelines above the leader's would make
		// recovery target one of them again.
		if lm, ok := o.Cluster.Members[act.Target]; ok && lm.Timeline > 0 {
			removed, err := a.pg.RemoveHistoryAbove(lm.Timeline)
			if len(removed) > 0 {
				a.log.Info("removed history files of timelines above the leader's", "leader_timeline", lm.Timeline, "timelines", removed)
			}
			if err != nil {
				return fmt.Errorf("remove history files above timeline %d: %w", lm.Timeline, err)
			}
		}
		return nil
	case ha.Reinit:
		up, err := a.upstream(o, act.Target)
		if err != nil {
			return err
		}
		if err := a.moveDataAside(ctx); err != nil {
			return err
		}
		return a.pg.CloneFrom(ctx, *up)
	case ha.RestoreStandby:
		if _, err := a.upstream(o, act.Target); err != nil {
			return err
		}
		return a.restoreStandby(ctx, o, o.Cluster.ReinitFromBackup[a.cfg.Name])
	case ha.RestoreCluster:
		return a.restoreCluster(ctx, o)
	case ha.CloneFrom:
		up, err := a.upstream(o, act.Target)
		if err != nil {
			return err
		}
		return a.pg.CloneFrom(ctx, *up)
	case ha.EnsureSlots:
		if a.conn == nil {
			return nil
		}
		dropped, err := pg.EnsureSlots(sctx, a.conn, act.Members)
		reason := act.Reason
		if reason == "" {
			reason = "its member is no longer part of the cluster"
		}
		for _, slot := range dropped {
			a.log.Warn("replication slot dropped", "slot", slot, "reason", reason)
			a.record(ctx, "drop-slot", slot, reason, "ok")
		}
		return err
	case ha.MoveStoreLead:
		a.moveStoreLeadership(ctx, act.Target)
		return nil
	case ha.SetSyncKey:
		return a.store.SetSync(sctx, o.Cluster.Sync, ha.SyncState{Leader: a.cfg.Name, Members: act.Members, Quorum: act.Quorum})
	case ha.SetSyncNames:
		return a.setSyncNames(sctx, o, act)
	case ha.ClearSwitchover:
		return a.store.ClearSwitchover(sctx, o.Cluster.Revision)
	case ha.ReserveTimeline:
		return a.reserveTimeline(sctx, o)
	case ha.ClearTakeover:
		return a.store.ClearTakeover(sctx, o.Cluster.Revision)
	case ha.ClearReinit:
		return a.store.ClearReinit(sctx, a.cfg.Name, o.Cluster.Revision)
	case ha.HandOver:
		a.setVIP(ctx, false)
		return a.handOver(ctx, o, act.Target)
	case ha.SetReplayTarget:
		// PostgreSQL reads recovery targets only at start. The stop is
		// placed right after the last commit before the operator's time,
		// found in the standby's own WAL.
		target := pg.ReplayTarget{Time: act.Until}
		if !act.Until.IsZero() {
			lsn, err := a.pg.StopPointBefore(ctx, o.Local.ReplayedLSN, o.Local.ReceivedLSN, o.Local.Timeline, act.Until)
			if err != nil {
				a.log.Warn("cannot place the replay stop by LSN: stopping at the first commit at the time instead", "err", err)
			} else {
				target.LSN = lsn
			}
		}
		a.pg.SetReplayTarget(target)
		if err := a.pg.Stop("fast", 60*time.Second); err != nil {
			return err
		}
		return a.step(ctx, o, ha.Action{Kind: ha.StartStandby, Target: act.Target})
	case ha.PauseReplay:
		if a.conn == nil {
			return errors.New("no connection to the local instance")
		}
		_, err := a.conn.Exec(sctx, `SELECT pg_wal_replay_pause()`)
		return err
	case ha.ResumeReplay:
		if a.conn == nil {
			return errors.New("no connection to the local instance")
		}
		_, err := a.conn.Exec(sctx, `SELECT pg_wal_replay_resume()`)
		return err
	}
	return fmt.Errorf("unknown step %q", act.Kind)
}

// moveDataAside keeps the data directory before a rebuild (an empty one,
// left by a failed rebuild, is not kept: it would replace the copy of the
// real one).
func (a *Agent) moveDataAside(ctx context.Context) error {
	aside, err := a.pg.MoveDataAside(time.Now())
	if err != nil {
		return err
	}
	if aside != "" {
		a.record(ctx, "move-data-aside", "", "the rebuild keeps the old data directory at "+aside, "ok")
	}
	a.rewindFailedFor = ""
	return nil
}

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

// handOver is the primary's side of a switchover: a clean shutdown, a wait
// until the candidate has received the shutdown checkpoint (so it has every
// commit), then the leader key is released for the candidate to take. If
// the candidate does not catch up, the primary starts again as it was.
func (a *Agent) handOver(ctx context.Context, o ha.Observation, to string) error {
	up, err := a.upstream(o, to)
	if err != nil {
		return err
	}
	a.record(ctx, "switchover-stop", to, "stopping the primary cleanly for the switchover", "started")
	if err := a.pg.Stop("fast", 60*time.Second); err != nil {
		return err
	}
	ctl, err := a.pg.Controldata(ctx)
	if err != nil {
		return err
	}
	caughtUp, last := false, ha.LSN(0)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !caughtUp {
		last, err = receivedLSN(ctx, a.pg.SuperConninfo(*up))
		caughtUp = err == nil && last > ctl.CheckpointLSN
		if !caughtUp {
			time.Sleep(10 * time.Millisecond) // polling the candidate's position
		}
	}
	if !caughtUp {
		_ = a.store.ClearSwitchover(ctx, o.Cluster.Revision)
		startErr := a.keepingLease(ctx, func() error { return a.pg.Start(ctx, a.cfg.HA.PrimaryStartTimeout.D()) })
		return fmt.Errorf("switchover to %s abandoned: it received up to %s, not the shutdown checkpoint at %s; primary restarted (%v)",
			to, last, ctl.CheckpointLSN, startErr)
	}
	a.mu.Lock()
	a.mem.HoldsLeader = false
	a.mu.Unlock()
	return a.store.ReleaseLeader(ctx)
}

func receivedLSN(ctx context.Context, conninfo string) (ha.LSN, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pg.ConnectTo(cctx, conninfo)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var s *string
	if err := conn.QueryRow(cctx, `SELECT pg_last_wal_receive_lsn()::text`).Scan(&s); err != nil || s == nil {
		return 0, err
	}
	return ha.ParseLSN(*s)
}

// setSyncNames changes synchronous_standby_names and reloads.
func (a *Agent) setSyncNames(ctx context.Context, o ha.Observation, act ha.Action) error {
	names := ha.SyncNames{Method: o.Cluster.Config.SyncMethod, Count: act.Quorum, Members: act.Members, Wildcard: act.Wildcard}
	if err := a.pg.SetSyncNames(names.String()); err != nil {
		return err
	}
	if a.conn == nil {
		return errors.New("no connection to the local instance")
	}
	if err := pg.Reload(ctx, a.conn); err != nil {
		return err
	}
	a.mu.Lock()
	a.mem.SyncChangeLSN, a.mem.SyncChangeAt = o.Local.WalLSN, time.Now()
	a.mu.Unlock()
	return nil
}

// primeSyncNames makes a primary that starts in a synchronous mode wait
// for standbys from its first commit, even when this agent has just
// started and has set no synchronous_standby_names yet: the standbys the
// store's sync key names for this leader, or else any one standby, until
// ha.Decide chooses the set.
func (a *Agent) primeSyncNames(o ha.Observation) error {
	cfg := o.Cluster.Config
	if !cfg.Synchronous() || a.pg.SyncNames() != "" {
		return nil
	}
	names := ha.SyncNames{Method: "any", Count: 1, Wildcard: true}
	if s := o.Cluster.Sync; s != nil && s.Leader == a.cfg.Name && len(s.Members) > 0 {
		names = ha.SyncNames{Method: cfg.SyncMethod, Count: max(s.Quorum, 1), Members: s.Members}
	}
	if err := a.pg.SetSyncNames(names.String()); err != nil {
		return err
	}
	a.mu.Lock()
	a.mem.SyncChangeLSN, a.mem.SyncChangeAt = o.Local.WalLSN, time.Now()
	a.mu.Unlock()
	return nil
}

// renew refreshes the leader lease and updates the fencing deadline.
func (a *Agent) renew(ctx context.Context, optime ha.LSN) error {
	sent, err := a.store.RenewLeader(ctx, optime)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if errors.Is(err, dcs.ErrNotLeader) {
			a.mem.HoldsLeader = false
		}
		return err
	}
	a.mem.HoldsLeader, a.mem.LastRenew = true, sent
	return nil
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
	defer a.everyLoop(ctx, func(sctx context.Context) { _ = a.renew(sctx, 0) })()
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
