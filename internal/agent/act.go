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
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
)

// errStopPlan ends a plan without it being a failure (a lost race).
var errStopPlan = errors.New("plan stopped")

// execute runs a plan's steps in order, stopping at the first failure.
// Each step is one handler doing bounded I/O; what it found goes through
// ha.Remember into the memory the next Decide sees. Steps that change
// roles or data are recorded in the cluster history.
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
		err := a.run(ctx, o, act)
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
				a.record(ctx, act.Kind, act.Target, act.Reason, "failed: "+err.Error())
			}
			return
		}
		if act.Destructive() {
			a.again = true
			a.log.Info("step done", "step", act.String(), "took", took)
			a.record(ctx, act.Kind, act.Target, act.Reason, fmt.Sprintf("ok in %s", took))
		}
	}
}

// run carries out one action with its handler and remembers the outcome.
func (a *Agent) run(ctx context.Context, o ha.Observation, act ha.Action) error {
	h, ok := handlers[act.Kind]
	if !ok {
		return fmt.Errorf("unknown step %q", act.Kind)
	}
	return a.runWith(ctx, o, act, h)
}

func (a *Agent) runWith(ctx context.Context, o ha.Observation, act ha.Action, h handler) error {
	out := ha.Outcome{Action: act, At: time.Now()}
	err := h(a, ctx, o, act, &out)
	out.OK = err == nil
	out.Running = a.pg.Running()
	a.remember(out)
	return err
}

// remember applies an outcome to the memory (ha.Remember decides what it
// means).
func (a *Agent) remember(out ha.Outcome) {
	a.mu.Lock()
	a.mem = ha.Remember(a.mem, out)
	a.mu.Unlock()
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
	return every(ctx, a.cfg.HA.LoopInterval.D(), func() bool {
		sctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
		defer cancel()
		fn(sctx)
		return true
	})
}

// every runs fn every interval until it returns false, ctx ends or the
// returned function is called; that function waits for a run in progress.
func every(ctx context.Context, interval time.Duration, fn func() bool) func() {
	ctx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ticks(ctx, interval, fn)
	}()
	return func() {
		stop()
		<-stopped
	}
}

// ticks runs fn each time interval passes (the first time after one
// interval) until it returns false or ctx ends; a run that takes longer
// than interval delays the next, never overlaps it.
func ticks(ctx context.Context, interval time.Duration, fn func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
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
	up := &pg.Upstream{Name: name, Host: m.Host, Port: m.Port}
	return up, a.pg.PinPeer(*up)
}

// handler carries out one action: bounded I/O, and the facts it found in
// out. It decides nothing: what happens next is the next Decide's call.
type handler func(a *Agent, ctx context.Context, o ha.Observation, act ha.Action, out *ha.Outcome) error

var handlers = map[ha.Kind]handler{
	ha.ClaimInit: (*Agent).claimInit,
	ha.Initdb: func(a *Agent, ctx context.Context, _ ha.Observation, _ ha.Action, _ *ha.Outcome) error {
		return a.pg.Initdb(ctx)
	},
	ha.FinishInit: func(a *Agent, ctx context.Context, _ ha.Observation, _ ha.Action, _ *ha.Outcome) error {
		return a.finishInit(ctx)
	},
	ha.AcquireLeader: (*Agent).acquireLeader,
	ha.RenewLeader:   (*Agent).renewLeader,
	ha.ReleaseLeader: (*Agent).releaseLeader,
	ha.StartPrimary:  (*Agent).startPrimary,
	ha.StartStandby:  (*Agent).startStandby,
	ha.Follow:        (*Agent).follow,
	ha.ArchiveFetch:  (*Agent).archiveFetch,
	ha.Promote:       (*Agent).promote,
	ha.Fence:         (*Agent).fence,
	ha.Stop:          (*Agent).stop,
	ha.CrashRecover: func(a *Agent, ctx context.Context, _ ha.Observation, _ ha.Action, _ *ha.Outcome) error {
		return a.pg.CrashRecover(ctx)
	},
	ha.Rewind:         (*Agent).rewind,
	ha.Reinit:         (*Agent).reinit,
	ha.RestoreStandby: (*Agent).restoreStandbyStep,
	ha.RestoreCluster: func(a *Agent, ctx context.Context, o ha.Observation, _ ha.Action, _ *ha.Outcome) error {
		return a.restoreCluster(ctx, o)
	},
	ha.CloneFrom:       (*Agent).cloneFrom,
	ha.EnsureSlots:     (*Agent).ensureSlots,
	ha.MoveStoreLead:   (*Agent).moveStoreLead,
	ha.SetSyncKey:      (*Agent).setSyncKey,
	ha.SetSyncNames:    (*Agent).setSyncNames,
	ha.ClearSwitchover: (*Agent).clearSwitchover,
	ha.ReserveTimeline: (*Agent).reserveTimelineStep,
	ha.ClearTakeover:   (*Agent).clearTakeover,
	ha.ClearReinit:     (*Agent).clearReinit,
	ha.HandOver:        (*Agent).handOver,
	ha.SetReplayTarget: (*Agent).setReplayTarget,
	ha.PauseReplay:     replaySQL(`SELECT pg_wal_replay_pause()`),
	ha.ResumeReplay:    replaySQL(`SELECT pg_wal_replay_resume()`),
}

// storeCtx bounds one store request of a step.
func (a *Agent) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.storeTimeout())
}

func (a *Agent) claimInit(ctx context.Context, _ ha.Observation, act ha.Action, _ *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	ok, err := a.store.ClaimInit(sctx)
	if err != nil {
		return err
	}
	if !ok {
		return errStopPlan
	}
	a.record(ctx, act.Kind, "", "won the bootstrap race", "ok")
	return nil
}

func (a *Agent) acquireLeader(ctx context.Context, _ ha.Observation, _ ha.Action, out *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	ok, sent, err := a.store.AcquireLeader(sctx)
	if err != nil {
		return err
	}
	if !ok {
		return errStopPlan
	}
	out.Sent = sent
	return nil
}

func (a *Agent) renewLeader(ctx context.Context, o ha.Observation, _ ha.Action, out *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	optime := ha.OptimeDue(o, o.Memory.Optime, o.Memory.OptimeAt, o.Local.WalLSN)
	return a.renewInto(sctx, optime, out)
}

// renewInto refreshes the leader lease (writing optime when not 0).
func (a *Agent) renewInto(ctx context.Context, optime lsn.LSN, out *ha.Outcome) error {
	sent, err := a.store.RenewLeader(ctx, optime)
	if err != nil {
		out.NotLeader = errors.Is(err, dcs.ErrNotLeader)
		return err
	}
	out.Sent, out.Optime = sent, optime
	return nil
}

func (a *Agent) releaseLeader(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	a.setVIP(ctx, false)
	a.remember(ha.Outcome{Action: act, At: time.Now()}) // no longer holding it, whatever the store says
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	var err error
	// A hand-over to the switchover's candidate says what it received.
	if h, sw := o.Memory.HandOver, o.Cluster.Switchover; act.Target != "" && h != nil && h.CaughtUp && sw != nil && sw.To == act.Target {
		err = a.store.HandOverLeader(sctx, *sw, h.Checkpoint)
	} else {
		err = a.store.ReleaseLeader(sctx)
	}
	// Released, the old primary's postmaster finishes its clean stop
	// (archiver, WAL senders) while the candidate promotes; not released,
	// the key stays with this node. Either way the next loop sees
	// PostgreSQL down.
	a.awaitHandOverStop()
	return err
}

func (a *Agent) startPrimary(ctx context.Context, o ha.Observation, _ ha.Action, out *ha.Outcome) error {
	if err := a.primeSyncNames(o, out); err != nil {
		return err
	}
	if err := a.pg.WriteConfig(true, nil); err != nil {
		return err
	}
	return a.keepingLease(ctx, func() error { return a.pg.Start(ctx, a.cfg.HA.PrimaryStartTimeout.D()) })
}

func (a *Agent) startStandby(ctx context.Context, o ha.Observation, act ha.Action, out *ha.Outcome) error {
	up, err := a.upstream(o, act.Target)
	if err != nil {
		out.Skipped = true
		return err
	}
	if err := a.pg.WriteConfig(false, up); err != nil {
		out.Skipped = true
		return err
	}
	// A leader restarting in recovery (to promote) keeps its lease.
	if err := a.keepingLease(ctx, func() error { return a.pg.Start(ctx, 60*time.Second) }); err != nil {
		return err
	}
	// Slots kept from a time as primary would pin WAL on a standby.
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	if conn, err := a.pg.Connect(dctx); err == nil {
		_ = pg.DropAllSlots(dctx, conn)
		conn.Close(context.Background())
	}
	return nil
}

func (a *Agent) follow(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	up, err := a.upstream(o, act.Target)
	if err != nil {
		return err
	}
	// A placeholder of this node's own promotion that did not happen may
	// stand for a timeline another node did promote onto; kept, the WAL
	// receiver would not fetch that timeline's history from the new
	// primary and recovery would read the placeholder's (finding 20).
	removed, err := a.pg.RemoveTimelinePlaceholders()
	if len(removed) > 0 {
		a.log.Info("removed the timeline placeholders of a promotion that did not happen", "files", removed)
	}
	if err != nil {
		return err
	}
	if err := a.pg.WriteConfig(false, up); err != nil {
		return err
	}
	if err := a.reload(ctx); err != nil {
		return err
	}
	// Slots left from a time as primary would hold WAL forever.
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	return pg.DropAllSlots(sctx, a.conn)
}

// archiveFetch turns restore_command off (act.NoArchive) or on again on a
// standby of act.Target, and reloads.
func (a *Agent) archiveFetch(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	up, err := a.upstream(o, act.Target)
	if err != nil {
		return err
	}
	a.pg.SetRestoreOff(act.NoArchive)
	if err := a.pg.WriteConfig(false, up); err != nil {
		return err
	}
	return a.reload(ctx)
}

func (a *Agent) promote(ctx context.Context, _ ha.Observation, act ha.Action, _ *ha.Outcome) error {
	if a.conn == nil {
		return errors.New("no connection to the local instance")
	}
	pctx, pcancel := context.WithTimeout(ctx, 70*time.Second)
	defer pcancel()
	// The lease is renewed while PostgreSQL promotes, as while a primary
	// starts: the end of recovery fetches history files through
	// restore_command and writes a checkpoint, which on a starved host
	// took longer than ttl - safety_margin after the key was taken, and
	// the watchdog fenced every new primary in turn (chaos subset, load
	// ~25). A renewal that fails still fences on the same deadline.
	if act.NoArchive != a.pg.RestoreOff() {
		// NoArchive and restore_command still on: a candidate not
		// prepared (ArchiveFetch) when the key came; the startup process
		// may be in a restore_command call, and the promotion waits for
		// it. The reverse: a prepared candidate whose primary died before
		// it handed over, which must replay what the archive has first.
		// The reload is signalled before the promotion; without
		// restore_command the startup process waits on its latch, which
		// the reload's signal wakes, and reads the file before it sees
		// the promotion.
		a.pg.SetRestoreOff(act.NoArchive)
		if err := a.pg.WriteConfig(true, nil); err != nil {
			return err
		}
		if err := pg.Reload(pctx, a.conn); err != nil {
			return err
		}
	}
	a.pg.SetRestoreOff(false) // the primary's configuration, written below, has it
	// The end of recovery reads the last record again, from the newest
	// timeline's file of its segment: a short copy there (chaos finding
	// 19) would PANIC the promotion.
	done, err := a.pg.CompleteShortCopies()
	if len(done) > 0 {
		a.log.Warn("completed short copies of switch segments from the parent timeline's copies before promoting", "files", done)
	}
	if err != nil {
		a.log.Warn("a short copy of a switch segment left as it is", "err", err)
	}
	if err := a.keepingLease(ctx, func() error { return pg.Promote(pctx, a.conn) }); err != nil {
		return err
	}
	if err := a.pg.WriteConfig(true, nil); err != nil {
		return err
	}
	return pg.Reload(pctx, a.conn)
}

func (a *Agent) fence(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	// The stop first: nothing may delay it (the address follows at once;
	// see the watchdog).
	a.remember(ha.Outcome{Action: act, At: time.Now()})
	wasRunning := a.pg.Running()
	err := a.pg.Stop("immediate", 5*time.Second)
	a.setVIP(ctx, false)
	if wasRunning {
		a.cb.enqueue(callback{event: "on_fence", role: ha.RoleNone, prev: callbackRole(o.Local)})
	}
	return err
}

func (a *Agent) stop(ctx context.Context, _ ha.Observation, _ ha.Action, _ *ha.Outcome) error {
	a.setVIP(ctx, false)
	return a.pg.Stop("fast", 60*time.Second)
}

func (a *Agent) rewind(ctx context.Context, o ha.Observation, act ha.Action, out *ha.Outcome) error {
	up, err := a.upstream(o, act.Target)
	if err != nil {
		out.Skipped = true
		return err
	}
	log, err := a.pg.Rewind(ctx, *up)
	if err != nil {
		out.Unreachable = errors.Is(err, pg.ErrSourceUnreachable)
		return err
	}
	out.Rewound = true
	a.log.Info("pg_rewind", "output", log)
	// History files of timelines above the leader's would make recovery
	// target one of them again.
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
}

func (a *Agent) reinit(ctx context.Context, o ha.Observation, act ha.Action, out *ha.Outcome) error {
	up, err := a.upstream(o, act.Target)
	if err != nil {
		out.Skipped = true
		return err
	}
	if err := a.moveDataAside(ctx); err != nil {
		return err
	}
	return a.pg.CloneFrom(ctx, *up)
}

func (a *Agent) restoreStandbyStep(ctx context.Context, o ha.Observation, act ha.Action, out *ha.Outcome) error {
	if _, err := a.upstream(o, act.Target); err != nil {
		out.Skipped = true
		return err
	}
	return a.restoreStandby(ctx, o, o.Cluster.ReinitFromBackup[a.cfg.Name])
}

func (a *Agent) cloneFrom(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	up, err := a.upstream(o, act.Target)
	if err != nil {
		return err
	}
	return a.pg.CloneFrom(ctx, *up)
}

func (a *Agent) ensureSlots(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	if a.conn == nil {
		return nil
	}
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	members := act.Members
	if a.streaming() || a.streamWanted(o) {
		// The stream's slot is kept while the stream runs or is about to
		// (the loop after a restart in place runs this step before it
		// starts the stream again: dropping the slot then lets the end of
		// recovery's checkpoint recycle WAL the stream has not stored).
		// Otherwise it is dropped like a departed member's, so it never
		// pins WAL.
		members = append(slices.Clone(members), "archive")
	}
	dropped, err := pg.EnsureSlots(sctx, a.conn, members)
	reason := act.Reason
	if reason == "" {
		reason = "its member is no longer part of the cluster"
	}
	for _, slot := range dropped {
		a.log.Warn("replication slot dropped", "slot", slot, "reason", reason)
		a.record(ctx, ha.EventDropSlot, slot, reason, "ok")
	}
	return err
}

func (a *Agent) moveStoreLead(ctx context.Context, _ ha.Observation, act ha.Action, _ *ha.Outcome) error {
	a.moveStoreLeadership(ctx, act.Target)
	return nil
}

func (a *Agent) setSyncKey(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	return a.store.SetSync(sctx, o.Cluster.Sync, ha.SyncState{Leader: a.cfg.Name, Members: act.Members, Quorum: act.Quorum})
}

func (a *Agent) clearSwitchover(ctx context.Context, o ha.Observation, _ ha.Action, _ *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	return a.store.ClearSwitchover(sctx, o.Cluster.Revision)
}

func (a *Agent) clearTakeover(ctx context.Context, o ha.Observation, _ ha.Action, _ *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	return a.store.ClearTakeover(sctx, o.Cluster.Revision)
}

func (a *Agent) clearReinit(ctx context.Context, o ha.Observation, _ ha.Action, _ *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	return a.store.ClearReinit(sctx, a.cfg.Name, o.Cluster.Revision)
}

func (a *Agent) reserveTimelineStep(ctx context.Context, o ha.Observation, _ ha.Action, _ *ha.Outcome) error {
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	return a.reserveTimeline(sctx, o)
}

// setReplayTarget restarts a standby with a recovery target: PostgreSQL
// reads recovery targets only at start. The stop is placed right after the
// last commit before the operator's time, found in the standby's own WAL.
func (a *Agent) setReplayTarget(ctx context.Context, o ha.Observation, act ha.Action, _ *ha.Outcome) error {
	target := pg.ReplayTarget{Time: act.Until}
	if !act.Until.IsZero() {
		stopAt, err := a.pg.StopPointBefore(ctx, o.Local.ReplayedLSN, o.Local.ReceivedLSN, o.Local.Timeline, act.Until)
		if err != nil {
			a.log.Warn("cannot place the replay stop by LSN: stopping at the first commit at the time instead", "err", err)
		} else {
			target.LSN = stopAt
		}
	}
	a.pg.SetReplayTarget(target)
	if err := a.pg.Stop("fast", 60*time.Second); err != nil {
		return err
	}
	return a.runWith(ctx, o, ha.Action{Kind: ha.StartStandby, Target: act.Target}, (*Agent).startStandby)
}

// reload makes the local instance read its configuration again.
func (a *Agent) reload(ctx context.Context) error {
	if a.conn == nil {
		return errors.New("no connection to the local instance")
	}
	sctx, cancel := a.storeCtx(ctx)
	defer cancel()
	return pg.Reload(sctx, a.conn)
}

// replaySQL pauses or resumes a standby's replay.
func replaySQL(sql string) handler {
	return func(a *Agent, ctx context.Context, _ ha.Observation, _ ha.Action, _ *ha.Outcome) error {
		if a.conn == nil {
			return errors.New("no connection to the local instance")
		}
		sctx, cancel := a.storeCtx(ctx)
		defer cancel()
		_, err := a.conn.Exec(sctx, sql)
		return err
	}
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
		a.record(ctx, ha.EventMoveDataAside, "", "the rebuild keeps the old data directory at "+aside, "ok")
	}
	return nil
}
