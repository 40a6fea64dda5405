package ha

import (
	"fmt"

	"github.com/pgguard/pgguard/internal/lsn"
)

// rewindCooldown keeps a standby that cannot stream from rewinding in a
// tight loop when pg_rewind finds nothing to do.
const rewindCooldown = 30

// rewindCooled reports whether a rewind from leader may run now. The
// cooldown is against a loop of rewinds from the same source; a rewind
// from another leader is a new divergence (a second failover within the
// cooldown, as in a double failure or back-to-back host losses) and runs
// at once.
func rewindCooled(o Observation, leader string) bool {
	return o.Memory.LastRewindFrom != leader || o.Now.Sub(o.Memory.LastRewind) > rewindCooldown*o.Settings.LoopInterval
}

// Decide returns the plan for one loop. It is a pure function of o.
func Decide(o Observation) Plan {
	plan := decide(o)
	if o.StoreOK && o.Cluster.Config.IsNodePaused(o.Self) {
		return pausedPlan(o, plan)
	}
	return plan
}

func decide(o Observation) Plan {
	if !o.StoreOK {
		return decideWithoutStore(o)
	}
	if o.Local.Data == DataInvalid {
		return Plan{{Kind: Wait, Reason: "data directory unusable: " + o.Local.DataProblem}}
	}
	c := o.Cluster
	if o.Local.Running && o.Local.ShutDown {
		// A switchover's old primary past its shutdown checkpoint: it can
		// take no write, so the key may go to a candidate that received
		// that checkpoint now, not once the archiver is done.
		if c.Leader != nil && c.Leader.Name == o.Self {
			if plan, ok := handOverPlan(o); ok {
				return plan
			}
		}
		return Plan{{Kind: Wait, Reason: "PostgreSQL is finishing a clean shutdown (archiver, WAL senders); it takes no connection and writes no WAL"}}
	}
	if c.SystemID == "" {
		return decideBootstrap(o)
	}
	if c.Restore != nil {
		return decideClusterRestore(o)
	}
	if c.Config.IsRemoved(o.Self) {
		why := "this node was removed from the cluster ('pgguard ctl remove'): it takes no step; remove its data and configuration, or add it back as a new member"
		if o.Local.Running {
			return Plan{{Kind: Stop, Reason: why}}
		}
		return Plan{{Kind: Wait, Reason: why}}
	}
	if o.Local.Data == DataValid && o.Local.SystemID != "" && o.Local.SystemID != c.SystemID && !c.Reinit[o.Self] {
		return Plan{{Kind: Wait, Reason: fmt.Sprintf("split: data directory belongs to system %s, cluster is %s; not touching it ('pgguard ctl reinit %s' rebuilds it)",
			o.Local.SystemID, c.SystemID, o.Self)}}
	}
	if plan, ok := decideOperatorRequests(o); ok {
		return plan
	}
	switch {
	case c.Leader == nil:
		return decideLeaderless(o)
	case c.Leader.Name == o.Self:
		return decideAsLeader(o)
	default:
		return decideFollower(o, c.Leader.Name)
	}
}

// fenceDeadlinePassed reports whether a primary holding the leader key has
// gone ttl - safety_margin without a successful renewal: past that instant
// the lease may expire in the store before this node notices, so it must
// stop accepting writes now.
func fenceDeadlinePassed(o Observation) bool {
	if !o.Memory.HoldsLeader || o.Memory.LastRenew.IsZero() {
		return false
	}
	return o.Now.Sub(o.Memory.LastRenew) >= o.Settings.TTL-o.Settings.SafetyMargin
}

func decideWithoutStore(o Observation) Plan {
	l := o.Local
	if l.Running && !l.InRecovery {
		if fenceDeadlinePassed(o) || !o.Memory.HoldsLeader {
			return Plan{{Kind: Fence, Reason: fmt.Sprintf("cannot reach the store to renew the leader lease for %s (ttl %s, margin %s): stop accepting writes before another node can be elected",
				o.Now.Sub(o.Memory.LastRenew).Round(1e6), o.Settings.TTL, o.Settings.SafetyMargin)}}
		}
		return Plan{{Kind: Wait, Reason: "store unreachable; lease still valid"}}
	}
	if !l.Running && l.Data == DataValid {
		// A read-only standby harms nobody and keeps serving reads.
		return Plan{{Kind: StartStandby, Reason: "store unreachable: start read-only until a leader is known"}}
	}
	return Plan{{Kind: Wait, Reason: "store unreachable"}}
}

func decideBootstrap(o Observation) Plan {
	c := o.Cluster
	if c.InitClaim != "" && c.InitClaim != o.Self {
		return Plan{{Kind: Wait, Reason: "waiting for " + c.InitClaim + " to bootstrap the cluster"}}
	}
	if c.Leader != nil && c.Leader.Name != o.Self {
		// Its bootstrap claim expired before it recorded the system: its
		// leader key will too, or it finishes.
		return Plan{{Kind: Wait, Reason: "waiting for " + c.Leader.Name + ", which holds the leader key, to finish bootstrapping the cluster"}}
	}
	plan := Plan{}
	if c.InitClaim == "" {
		plan = append(plan, Action{Kind: ClaimInit, Reason: "cluster not bootstrapped"})
	}
	if o.Local.Data == DataEmpty {
		plan = append(plan, Action{Kind: Initdb, Reason: "bootstrap a new cluster"})
	}
	return append(plan,
		Action{Kind: AcquireLeader, Reason: "bootstrap"},
		Action{Kind: StartPrimary, Reason: "bootstrap"},
		Action{Kind: FinishInit, Reason: "bootstrap complete"},
	)
}

func decideAsLeader(o Observation) Plan {
	l := o.Local
	switch {
	case l.Running && l.Healthy && !l.InRecovery:
		plan := append(Plan{{Kind: RenewLeader}, slotsAction(o)}, storeLeadMove(o)...)
		if !o.Memory.HoldsLeader {
			// The key carries our name but not our lease (this agent
			// restarted): take it over in a transaction first.
			plan = append(Plan{{Kind: AcquireLeader, Reason: "leader key holds our name from a previous agent run"}}, plan...)
		}
		sw, handOver := switchoverPlan(o)
		if handOver {
			if !o.Memory.HoldsLeader {
				return append(Plan{{Kind: AcquireLeader}, {Kind: RenewLeader}}, sw...)
			}
			return append(Plan{{Kind: RenewLeader}}, sw...)
		}
		plan = append(plan, sw...)
		if o.Cluster.Switchover != nil && o.Cluster.Switchover.To == o.Self {
			plan = append(plan, Action{Kind: ClearSwitchover, Reason: "switchover to this node done"})
		}
		return append(plan, syncSteps(o)...)
	case l.Running && l.Healthy && l.InRecovery:
		return promotePlan(o, "hold the leader key before promoting", "this node holds the leader key")
	case l.Running && !l.Healthy:
		if downTooLong(o) {
			return Plan{
				{Kind: ReleaseLeader, Reason: fmt.Sprintf("primary unhealthy for more than primary_start_timeout (%s)", o.Settings.PrimaryStartTimeout)},
				{Kind: Fence, Reason: "unhealthy primary gave up the leader key"},
			}
		}
		return Plan{{Kind: RenewLeader}, {Kind: Wait, Reason: "primary not answering health checks; waiting up to primary_start_timeout"}}
	}
	// Not running.
	if plan, ok := handOverPlan(o); ok {
		return plan
	}
	if l.Data != DataValid {
		return Plan{{Kind: ReleaseLeader, Reason: "no usable data directory on the leader"}}
	}
	if downTooLong(o) && !o.Cluster.Config.Paused {
		return Plan{{Kind: ReleaseLeader, Reason: fmt.Sprintf("primary did not come back within primary_start_timeout (%s)", o.Settings.PrimaryStartTimeout)}}
	}
	if !wasPrimary(l) {
		// A standby's data must never open as a primary on its old
		// timeline: start it in recovery and promote it.
		return Plan{
			{Kind: AcquireLeader, Reason: "keep the leader key while the instance restarts"},
			{Kind: StartStandby, Reason: "leader's data directory was last a standby: start in recovery, then promote"},
		}
	}
	return Plan{
		{Kind: AcquireLeader, Reason: "keep the leader key while the primary restarts"},
		{Kind: StartPrimary, Reason: "postmaster not running on the leader: restart in place"},
	}
}

func downTooLong(o Observation) bool {
	return !o.Memory.DownSince.IsZero() && o.Now.Sub(o.Memory.DownSince) >= o.Settings.PrimaryStartTimeout
}

func decideFollower(o Observation, leader string) Plan {
	l := o.Local
	lm, leaderPublished := o.Cluster.Members[leader]
	leaderUp := leaderPublished && lm.Role == RolePrimary && lm.Healthy
	if l.Running && !l.InRecovery {
		return Plan{{Kind: Fence, Reason: leader + " holds the leader key while this node runs as a primary"}}
	}
	if plan := diskCriticalStandby(o); plan != nil {
		return plan
	}
	if !l.Running {
		switch {
		case l.Data == DataEmpty:
			if !leaderUp {
				return Plan{{Kind: Wait, Reason: "empty data directory; waiting for leader " + leader + " to be up to clone it"}}
			}
			return Plan{
				{Kind: CloneFrom, Target: leader, Reason: "empty data directory"},
				{Kind: StartStandby, Target: leader},
			}
		case wasPrimary(l) && !leaderUp:
			return Plan{{Kind: Wait, Reason: "former primary; waiting for leader " + leader + " to be up before rejoining"}}
		case wasPrimary(l):
			return rejoinPlan(o, leader, lm)
		case o.Memory.RewindFailed && leaderUp:
			return rejoinPlan(o, leader, lm)
		case o.Memory.StartFailures >= 3 && leaderUp && rewindCooled(o, leader):
			// It will not start as a standby of this leader (e.g. "requested
			// timeline does not contain minimum recovery point"): its WAL
			// diverged; rewind, and rebuild if that fails.
			return Plan{
				{Kind: Rewind, Target: leader, Reason: fmt.Sprintf("%d starts as standby of %s failed: diverged", o.Memory.StartFailures, leader)},
				{Kind: StartStandby, Target: leader},
			}
		}
		return Plan{{Kind: StartStandby, Target: leader, Reason: "start as standby of " + leader}}
	}
	if l.Following != leader {
		return Plan{{Kind: Follow, Target: leader, Reason: "leader is " + leader}}
	}
	if off := switchoverCandidate(o, leader); off != l.RestoreOff {
		why := "switchover done or withdrawn: fetch from the archive again"
		if off {
			why = "switchover to this node: stream only, so that once " + leader + " stops, recovery waits for the promotion instead of calling restore_command"
		}
		return Plan{{Kind: ArchiveFetch, Target: leader, NoArchive: off, Reason: why}}
	}
	if plan := replayPlan(o, leader); plan != nil {
		return plan
	}
	// A standby diverged from the leader's history cannot follow it: either
	// its receiver fails, or (seen in the chaos suite) the receiver streams
	// the leader's timeline while the startup process refuses it as "not a
	// child" of the timeline it replays, and the standby looks streaming
	// while it replays nothing. The replay timeline tells the second case.
	// Without a receiver, Timeline is the last restartpoint's, which lags
	// a timeline switch the standby did replay: a standby replaying the
	// leader's own timeline cannot be off its history.
	tli, pos := l.Timeline, l.Position()
	if l.ReplayTimeline > tli {
		tli = l.ReplayTimeline
	}
	diverged := !l.Streaming && NeedsRewind(tli, pos, lm.Timeline, lm.History)
	certain := false
	switch {
	case l.ReplayTimeline == 0:
	case NeedsRewind(l.ReplayTimeline, l.ReplayedLSN, lm.Timeline, lm.History):
		diverged, tli, pos = true, l.ReplayTimeline, l.ReplayedLSN
		certain = l.ReplayTimelineFresh && o.Cluster.Config.Synchronous() && replayedPastFork(l.ReplayTimeline, l.ReplayedLSN, lm.History)
	case l.ReplayTimeline == lm.Timeline:
		diverged = false
	}
	// A diverged standby waits 2 × ttl after it started following before
	// it is rewound: a receiver still connecting, a restartpoint's
	// timeline or a leader's record not yet rewritten can all look like
	// a divergence for a moment. In a synchronous mode, one that has
	// replayed past the point where the leader's own history says its
	// timeline ended (read in this loop, not kept from an earlier one) is
	// not a moment's view: it holds changes the leader never had, whose
	// commits were never acknowledged, and the new primary's commits wait
	// for it (the sync host loss's outlier, docs/FAILOVER.md). It is
	// rewound at once. In async mode nothing waits for it, and its WAL
	// may hold acknowledged commits a second failover could still want:
	// it keeps the settle.
	settled := leaderUp && (certain || o.Now.Sub(l.FollowingSince) > 2*o.Settings.TTL) && rewindCooled(o, leader)
	if diverged && settled {
		why := fmt.Sprintf("cannot stream from %s: timeline %d at %s diverged from its history", leader, tli, pos)
		if certain {
			why += " (replayed past its fork: rewound at once)"
		}
		return Plan{
			{Kind: Stop, Reason: why},
			{Kind: Rewind, Target: leader, Reason: "timeline diverged"},
			{Kind: StartStandby, Target: leader},
		}
	}
	// A running standby whose recovery took as its target a newer timeline
	// that is not the leader's (a primary promoted and killed moments
	// later, whose history file it fetched) cannot follow the leader's
	// sibling timeline ("new timeline N is not a child of database system
	// timeline M") however close its replay is: PostgreSQL picks the target
	// timeline again only at start-up. Restart it, after a rewind if one is
	// needed.
	if above := replayedTimeline(l); !l.Streaming && settled {
		if stray := StrayTimelines(l.HistoryTimelines, above, lm); len(stray) > 0 {
			return Plan{
				{Kind: Stop, Reason: fmt.Sprintf("cannot stream from %s: recovery may target timeline %v, which is not in its history", leader, stray)},
				{Kind: Rewind, Target: leader, Reason: "restart on the leader's timeline"},
				{Kind: StartStandby, Target: leader},
			}
		}
	}
	return nil
}

// switchoverCandidate reports whether this standby is the candidate of a
// switchover from leader that is due. It then streams without
// restore_command: nothing is lost (the primary's slot for it holds its
// WAL), and when the primary stops for the hand-over the startup process
// waits on its latch rather than in restore_command calls, each a program
// start that the promotion would wait for.
func switchoverCandidate(o Observation, leader string) bool {
	sw := o.Cluster.Switchover
	return sw != nil && sw.To == o.Self && sw.From == leader && !o.Now.Before(sw.At)
}

func replayedTimeline(l Local) int {
	if l.ReplayTimeline != 0 {
		return l.ReplayTimeline
	}
	return l.Timeline
}

// StrayTimelines returns the timelines in have, newer than above, that are
// neither the leader's nor in its history: a standby's recovery may have
// taken one as its target.
func StrayTimelines(have []int, above int, lm Member) []int {
	var out []int
	for _, t := range have {
		if t <= above || t == lm.Timeline {
			continue
		}
		inHistory := false
		for _, h := range lm.History {
			if h.TLI == t {
				inHistory = true
			}
		}
		if !inHistory {
			out = append(out, t)
		}
	}
	return out
}

// wasPrimary reports whether a stopped data directory was last a primary
// (crashed or cleanly shut down), which means it may hold WAL the new
// primary never saw.
func wasPrimary(l Local) bool {
	return l.ControlState == ControlInProduction || l.ControlState == ControlShutDown
}

func rejoinPlan(o Observation, leader string, lm Member) Plan {
	l := o.Local
	if o.Memory.RewindFailed {
		if o.Settings.ReinitOnRewindFailure {
			return Plan{
				{Kind: Reinit, Target: leader, Reason: "pg_rewind failed: rebuild from a base backup of " + leader},
				{Kind: StartStandby, Target: leader},
			}
		}
		return Plan{{Kind: Wait, Reason: "pg_rewind failed and reinit_on_rewind_failure is off: run 'pgguard ctl reinit " + o.Self + "'"}}
	}
	if l.ControlState == ControlInProduction {
		// A crashed primary: we cannot know where its WAL ends without
		// recovering it, and pg_rewind wants a clean shutdown.
		return Plan{
			{Kind: CrashRecover, Reason: "former primary crashed: finish crash recovery in single-user mode"},
			{Kind: Rewind, Target: leader, Reason: "former primary rejoining " + leader},
			{Kind: StartStandby, Target: leader},
		}
	}
	// The shutdown checkpoint record starts at CheckpointLSN and so ends
	// after it: one byte past is the least the WAL reaches.
	if NeedsRewind(l.ControlTLI, l.CheckpointLSN+1, lm.Timeline, lm.History) {
		return Plan{
			{Kind: Rewind, Target: leader, Reason: fmt.Sprintf("timeline %d at %s diverged from %s's history", l.ControlTLI, l.CheckpointLSN, leader)},
			{Kind: StartStandby, Target: leader},
		}
	}
	return Plan{{Kind: StartStandby, Target: leader, Reason: "former primary rejoins cleanly: no divergence"}}
}

// forkOf returns where the leader's history says timeline tli ended,
// and whether the history names tli at all (only the leader's older
// timelines are named).
func forkOf(tli int, history []TimelineSwitch) (lsn.LSN, bool) {
	for _, h := range history {
		if h.TLI == tli {
			return h.Switch, true
		}
	}
	return 0, false
}

// replayedPastFork reports whether a standby that replayed timeline tli
// up to pos went past the point where the leader's history says tli
// ended. A timeline the history does not name may be a record not yet
// rewritten; this is not.
func replayedPastFork(tli int, pos lsn.LSN, history []TimelineSwitch) bool {
	sw, named := forkOf(tli, history)
	return named && pos > sw
}

// NeedsRewind reports whether a node whose WAL on timeline tli ends at pos
// has WAL that the leader, on timeline leaderTLI with the given history, does
// not: either its timeline is unknown to the leader, or its WAL goes past
// the point where the leader's timeline forked off it.
func NeedsRewind(tli int, pos lsn.LSN, leaderTLI int, history []TimelineSwitch) bool {
	if tli == 0 || tli == leaderTLI {
		return false
	}
	sw, named := forkOf(tli, history)
	return !named || pos > sw
}

// decideClusterRestore: while a whole-cluster restore is under way, the
// restoring node holds the leader key and restores; every other node stops
// and waits (no election: the restore decides the next primary), then is
// rebuilt from the same backup through its reinit request.
func decideClusterRestore(o Observation) Plan {
	c, l, r := o.Cluster, o.Local, o.Cluster.Restore
	if r.Node != o.Self {
		plan := Plan{}
		if l.Running {
			plan = append(plan, Action{Kind: Stop, Reason: "whole-cluster restore under way on " + r.Node})
		}
		return append(plan, Action{Kind: Wait, Reason: "whole-cluster restore under way on " + r.Node + "; this node is rebuilt from the same backup afterwards"})
	}
	plan := Plan{}
	switch {
	case c.Leader == nil:
		plan = append(plan, Action{Kind: AcquireLeader, Reason: "the node restoring the cluster becomes its primary"})
	case c.Leader.Name == o.Self:
		plan = append(plan, Action{Kind: RenewLeader})
	default:
		return Plan{{Kind: Wait, Reason: "whole-cluster restore: waiting for " + c.Leader.Name + " to give up the leader key"}}
	}
	// The step stops a running primary itself, after archiving its last WAL.
	return append(plan, Action{Kind: RestoreCluster, Reason: "whole-cluster restore requested by " + r.By})
}
