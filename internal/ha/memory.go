package ha

import (
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Observed updates the memory from one snapshot: when the postmaster went
// down, since when this node is a primary, which standbys streamed from
// it, when the leader key was lost and whether a rewind failure concerns
// the current leader. It returns a copy; m is not changed.
func Observed(m Memory, self string, now time.Time, local Local, c Cluster, storeOK bool) Memory {
	m.LastStreaming = copyTimes(m.LastStreaming)
	if local.Running {
		m.DownSince = time.Time{}
	} else if m.DownSince.IsZero() {
		m.DownSince = now
	}
	if !local.Running || local.InRecovery {
		// What streamed from this node as primary belongs to that term.
		m.LastStreaming, m.PrimarySince = nil, time.Time{}
	} else if m.PrimarySince.IsZero() {
		m.PrimarySince = now
	}
	if !storeOK {
		return m
	}
	if m.LastStreaming == nil {
		m.LastStreaming = map[string]time.Time{}
	}
	for _, name := range local.Streamers {
		m.LastStreaming[name] = now
	}
	if c.Leader == nil {
		if m.LeaderLostAt.IsZero() {
			m.LeaderLostAt, m.LeaderLostRev = now, c.Revision
		}
	} else {
		m.SawLeader = c.Leader.Name
		m.LeaderLostAt, m.LeaderLostRev = time.Time{}, 0
		if c.Leader.Name != self {
			m.HoldsLeader = false
		}
	}
	// A rewind failure concerns one leader only.
	m.RewindFailed = c.Leader != nil && m.RewindFailedFor == c.Leader.Name
	return m
}

// LeaderLost reports the leader whose key was just found gone between two
// memories ("" when nothing was lost), for the history.
func LeaderLost(before, after Memory) string {
	if before.LeaderLostAt.IsZero() && !after.LeaderLostAt.IsZero() {
		return before.SawLeader
	}
	return ""
}

// Outcome is what carrying out one action did: the facts the agent
// observed while doing it, for Remember.
type Outcome struct {
	Action Action
	At     time.Time // when the step started
	OK     bool      // the step succeeded
	// Running is whether the postmaster ran after the step.
	Running bool
	// Skipped: the step failed before it changed anything (its source
	// has no published address).
	Skipped bool
	// Unreachable: the step's source could not be reached (a rewind that
	// never ran).
	Unreachable bool
	// Rewound: pg_rewind succeeded (a later part of the step may still
	// have failed).
	Rewound bool
	// Sent is when a successful AcquireLeader or RenewLeader was sent;
	// NotLeader that a renewal found the key held by someone else.
	Sent      time.Time
	NotLeader bool
	// Optime is the position a successful RenewLeader wrote (0: none).
	Optime lsn.LSN
	// SyncChanged: the step changed synchronous_standby_names, with the
	// primary at WalLSN.
	SyncChanged bool
	WalLSN      lsn.LSN
	// HandOver is what a HandOver step found.
	HandOver *HandOverState
}

// Remember updates the memory from the outcome of an action: the lease
// held, the standby configuration in force, the count of failed starts,
// the rewind cool-down and failure, a hand-over under way. It returns a
// copy; m is not changed.
func Remember(m Memory, r Outcome) Memory {
	m.LastStreaming = copyTimes(m.LastStreaming)
	act := r.Action
	if r.SyncChanged {
		m.SyncChangeLSN, m.SyncChangeAt = r.WalLSN, r.At
	}
	if r.Skipped {
		return m
	}
	switch act.Kind {
	case AcquireLeader:
		if r.OK {
			m.HoldsLeader, m.LastRenew = true, r.Sent
		}
	case RenewLeader:
		switch {
		case r.OK:
			m.HoldsLeader, m.LastRenew = true, r.Sent
			if r.Optime != 0 {
				m.Optime, m.OptimeAt = r.Optime, r.At
			}
		case r.NotLeader:
			m.HoldsLeader = false
		}
	case ReleaseLeader:
		m.HoldsLeader, m.HandOver = false, nil
	case Fence:
		m.HoldsLeader, m.HandOver = false, nil
	case StartPrimary:
		m.Following, m.FollowingSince = "", time.Time{}
		m.HandOver = nil
	case Promote:
		if r.OK {
			m.Following, m.FollowingSince = "", time.Time{}
		}
	case StartStandby:
		m.Following, m.FollowingSince = act.Target, r.At
		switch {
		case r.OK:
			m.StartFailures = 0
		case !r.Running:
			m.StartFailures++
		}
	case Follow:
		if r.OK {
			m.Following, m.FollowingSince = act.Target, r.At
		}
	case Rewind:
		m.LastRewind, m.LastRewindFrom = r.At, act.Target
		switch {
		case r.OK || r.Rewound:
			m.RewindFailedFor, m.StartFailures = "", 0
		case !r.Unreachable:
			// Only a rewind that ran and failed against a reachable
			// source leads to a rebuild; an unreachable one is retried.
			m.RewindFailedFor = act.Target
		}
	case Reinit, RestoreStandby:
		// The old data directory is moved aside: its rewind failure goes
		// with it.
		m.RewindFailedFor = ""
	case HandOver:
		m.HandOver = r.HandOver
	}
	return m
}

// handOverPlan is a leader's next step once it stopped for a switchover:
// release the key to a candidate that has every commit, or else withdraw
// the switchover and start again as the primary it was.
func handOverPlan(o Observation) (Plan, bool) {
	h := o.Memory.HandOver
	if h == nil || (o.Local.Running && !(o.Local.ShutDown && h.CaughtUp)) {
		return nil, false
	}
	if h.CaughtUp {
		return Plan{{Kind: ReleaseLeader, Target: h.To,
			Reason: fmt.Sprintf("switchover: %s received the shutdown checkpoint %s", h.To, h.Checkpoint)}}, true
	}
	why := fmt.Sprintf("switchover to %s abandoned: it received up to %s, not the shutdown checkpoint at %s", h.To, h.Received, h.Checkpoint)
	plan := Plan{}
	if o.Cluster.Switchover != nil {
		plan = append(plan, Action{Kind: ClearSwitchover, Reason: why})
	}
	if !o.Memory.HoldsLeader {
		plan = append(plan, Action{Kind: AcquireLeader, Reason: "keep the leader key while the primary restarts"})
	}
	return append(plan, Action{Kind: StartPrimary, Reason: why + "; the primary starts again"}), true
}

func copyTimes(in map[string]time.Time) map[string]time.Time {
	if in == nil {
		return nil
	}
	out := make(map[string]time.Time, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
