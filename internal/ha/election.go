package ha

import (
	"fmt"
	"sort"
)

// The election: a standby's decision when no node holds the leader key,
// the rules that make it a candidate, and the plan that promotes it.

func decideLeaderless(o Observation) Plan {
	l := o.Local
	if !l.Running {
		switch l.Data {
		case DataEmpty:
			return Plan{{Kind: Wait, Reason: "empty data directory and no leader to clone from"}}
		default:
			return Plan{{Kind: StartStandby, Reason: "no leader: start read-only and take part in the election"}}
		}
	}
	if !l.Healthy {
		return Plan{{Kind: Wait, Reason: "local instance unhealthy: not a candidate"}}
	}
	if !l.InRecovery {
		if o.Cluster.Takeover != nil && o.Cluster.Takeover.To != o.Self {
			return Plan{{Kind: Fence, Reason: "takeover by " + o.Cluster.Takeover.To + " requested while this primary has no leader key"}}
		}
		// Still a primary, without the key (it expired): take it back if
		// nobody else has; if that fails the next loop fences us.
		return Plan{{Kind: AcquireLeader, Reason: "running primary found the leader key gone"}}
	}
	if tk := o.Cluster.Takeover; tk != nil {
		if tk.To == o.Self {
			return append(promotePlan(o, "takeover requested by "+tk.By, PromoteTakeover), Action{Kind: ClearTakeover, Reason: "takeover done"})
		}
		return Plan{{Kind: Wait, Reason: "takeover by " + tk.To + " under way"}}
	}
	if sw := o.Cluster.Switchover; sw != nil && o.Now.Sub(o.Memory.LeaderLostAt) < 2*o.Settings.TTL {
		if sw.To == o.Self {
			// The key may be gone because the primary handed over, or
			// because it died before it could check and hand over: the
			// candidate's own conditions hold either way (FuzzDecide found
			// a detached, delayed or non-synchronous target promoting).
			if ok, why := promotableAs(o, true); !ok {
				return Plan{{Kind: Wait, Reason: "switchover to this node, but " + why}}
			}
			plan := promotePlan(o, "switchover: "+sw.From+" handed over to this node", PromoteSwitchover)
			// The old primary released the key after it saw this node
			// receive its shutdown checkpoint, and this node's own
			// position agrees: every record there is has arrived, so the
			// promotion needs nothing from the archive (a release by a
			// primary that died mid-switchover carries no checkpoint).
			if sw.HandedOver > 0 && o.Local.ReceivedLSN > sw.HandedOver {
				plan[len(plan)-1].NoArchive = true
				plan[0].Reason += fmt.Sprintf(" (shutdown checkpoint %s received: promoting without the archive)", sw.HandedOver)
			}
			return plan
		}
		return Plan{{Kind: Wait, Reason: "switchover from " + sw.From + " to " + sw.To + " under way"}}
	}
	if o.Cluster.Config.Paused {
		return Plan{{Kind: Wait, Reason: "no leader, but automatic failover is paused ('pgguard ctl resume' to allow it)"}}
	}
	if ok, why := isBestCandidate(o); !ok {
		return Plan{{Kind: Wait, Reason: why}}
	}
	why := fmt.Sprintf("leader gone; this standby is the healthiest with the most WAL (%s)", l.Position())
	if _, _, inForce := syncCandidacy(o); inForce {
		// The sync key chose, not the position: a standby outside it may
		// hold more WAL (commits not acknowledged), and is rewound.
		why = fmt.Sprintf("leader gone; this standby is synchronous (%v) and no other live one that reported is further ahead (%s)", o.Cluster.Sync.Members, l.Position())
	}
	return promotePlan(o, why, PromoteElection)
}

// The reasons of a Promote step (the history's Reason): how the node came
// to be promoted. Metrics tell a switchover from a failover by them, so a
// value never changes once released.
const (
	PromoteElection   = "won the election"
	PromoteSwitchover = "switchover"
	PromoteTakeover   = "takeover"
)

// promotePlan takes the leader key and promotes. In a synchronous mode the
// new primary first records every other member as possibly synchronous and
// waits for any standby (ANY n (*)), so that no commit it acknowledges
// before its first loop narrows the set can be lost. It keeps itself in
// that key, with a quorum of one: it alone is known to hold every commit
// the old primary acknowledged (it won as the sync key's most advanced
// member), and the standbys it names may not have received them yet. Were
// it lost before they caught up, a standby of a key without it could be
// promoted without those commits (chaos/FINDINGS.md, 24); with it, a
// failover waits for it to come back. syncSteps narrows the key to the
// standbys once they have passed the new primary's position.
func promotePlan(o Observation, acquireWhy, promoteWhy string) Plan {
	plan := Plan{{Kind: AcquireLeader, Reason: acquireWhy}}
	if cfg := o.Cluster.Config; cfg.Synchronous() {
		// The standbys alive now may acknowledge until the first loop
		// chooses the set; a member already gone cannot, and listing it
		// would block the next failover. With none alive, every peer.
		var others []string
		for _, name := range o.Cluster.MemberNames() {
			m := o.Cluster.Members[name]
			if name != o.Self && m.Healthy && m.Role == RoleStandby && !cfg.IsDetached(name) && !cfg.IsStopped(name) {
				others = append(others, name)
			}
		}
		if len(others) == 0 {
			for _, p := range o.Peers {
				if p != o.Self && !cfg.IsDetached(p) {
					others = append(others, p)
				}
			}
		}
		sort.Strings(others)
		n := max(cfg.SyncCount, 1)
		q := min(n, max(len(others), 1))
		key := append([]string{o.Self}, others...)
		sort.Strings(key)
		plan = append(plan,
			Action{Kind: SetSyncKey, Members: key, Quorum: 1, Reason: fmt.Sprintf("new primary: %v may acknowledge until the set is chosen; this node, which holds every commit acknowledged before, stays in the key until they have caught up", others)},
			Action{Kind: SetSyncNames, Members: others, Quorum: q, Wildcard: len(others) == 0, Reason: "new primary in " + string(cfg.Mode) + " mode: wait for those standbys"},
		)
	}
	return append(plan,
		Action{Kind: ReserveTimeline, Reason: "a timeline no other promotion has used"},
		Action{Kind: Promote, Reason: promoteWhy})
}

// isBestCandidate decides whether this standby should race for the leader
// key. Other candidates count only once their published status is newer
// than the moment the leader disappeared; a member that has not published
// within two loops after that is presumed gone.
func isBestCandidate(o Observation) (bool, string) {
	if ok, why := promotable(o); !ok {
		return false, why
	}
	if _, _, inForce := syncCandidacy(o); inForce {
		return true, ""
	}
	return bestByPosition(o)
}

// promotable holds the conditions under which this standby may become the
// primary without an operator's takeover, whoever else is a candidate:
// none of the operator's marks against it, not delayed, not cut off, and
// in a synchronous mode a member of the synchronous set that no live
// member of it is ahead of.
func promotable(o Observation) (bool, string) { return promotableAs(o, false) }

// promotableAs is promotable; target says this node is a switchover's
// target, which a synchronous member at the same position does not outrank.
func promotableAs(o Observation, target bool) (bool, string) {
	if o.Settings.NoFailover {
		return false, "no_failover is set on this node"
	}
	if o.Cluster.Config.IsDetached(o.Self) {
		return false, "this node is detached"
	}
	if o.Cluster.Config.IsStopped(o.Self) {
		return false, "this node is stopped by the operator"
	}
	if o.Cluster.Config.IsNodePaused(o.Self) {
		return false, "this node is paused by the operator"
	}
	if o.Local.Isolated != "" {
		return false, "isolated, not campaigning: " + o.Local.Isolated
	}
	if o.Local.Disk == DiskCritical {
		return false, "disk critical (free space below disk.critical), not campaigning"
	}
	if Delayed(o) {
		return false, "a delayed standby is never promoted automatically ('pgguard ctl takeover --force --to " + o.Self + "' does)"
	}
	if ok, why, inForce := syncCandidacyTies(o, target); inForce && !ok {
		return false, why
	}
	return true, ""
}

// bestByPosition is the asynchronous election: the healthy candidate with
// the most WAL (within maximum_lag_on_failover) wins, ties by name, once
// every other candidate has published after the leader loss.
func bestByPosition(o Observation) (bool, string) {
	mine := o.Local.Position()
	if o.Cluster.Optime > mine && int64(o.Cluster.Optime-mine) > o.Settings.MaxLagOnFailover {
		return false, fmt.Sprintf("lag %d bytes behind the last primary position %s exceeds maximum_lag_on_failover %d",
			int64(o.Cluster.Optime-mine), o.Cluster.Optime, o.Settings.MaxLagOnFailover)
	}
	waited := o.Now.Sub(o.Memory.LeaderLostAt)
	for _, name := range o.Cluster.MemberNames() {
		m := o.Cluster.Members[name]
		if name == o.Self || m.NoFailover || m.Isolated || m.Delayed || !m.Healthy || m.Role != RoleStandby || o.Cluster.Config.IsDetached(name) ||
			o.Cluster.Config.IsNodePaused(name) {
			continue
		}
		if m.Revision <= o.Memory.LeaderLostRev && waited < 2*o.Settings.LoopInterval {
			return false, "waiting for " + name + " to publish its position after the leader loss"
		}
		if m.Revision <= o.Memory.LeaderLostRev {
			continue // stale: presumed gone
		}
		if o.Cluster.Optime > m.Position() && int64(o.Cluster.Optime-m.Position()) > o.Settings.MaxLagOnFailover {
			continue // over the lag limit: not a candidate
		}
		p := m.Position()
		if p > mine || (p == mine && name < o.Self) {
			return false, fmt.Sprintf("%s is a better candidate (%s vs our %s)", name, p, mine)
		}
	}
	return true, ""
}
