package ha

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// StoreView is what this node's embedded etcd member knows of the raft
// group, from etcd's own state.
type StoreView struct {
	// RaftLeader: this node's member leads raft. Peers is filled only then.
	RaftLeader bool
	Peers      map[string]StorePeer
	// StableSince is when this member last became raft leader or the set
	// of peers its transport reaches last changed.
	StableSince time.Time
}

// StorePeer is the raft leader's view of one other voting member.
type StorePeer struct {
	// Active: the leader's peer transport has a working stream to it.
	Active bool
	// CaughtUp: its matched log index has reached the leader's commit
	// index.
	CaughtUp bool
}

// StoreSettle is how long the raft group must have kept its leader and its
// set of reachable members before the primary hands raft leadership on: a
// member lost just now (killed, or cut off and not yet noticed by the
// transport) must never be chosen, and a group that has just elected is
// left alone.
func StoreSettle(s Settings) time.Duration {
	return max(5*time.Second, 2*s.TTL)
}

// storeLeadMove hands raft leadership of the store from the primary's own
// etcd member to a standby's, so that losing the primary's host costs no
// store election. A pending transfer makes the raft leader drop proposals
// (lease renewals among them) until it completes or raft abandons it after
// one election timeout, so it is planned only when it cannot cost the
// primary its lease: the group has been stable for StoreSettle, the target
// is a healthy standby whose member is reachable and caught up, and one
// election timeout plus one loop fits in ttl - safety_margin. Otherwise
// raft leadership stays where it is.
func storeLeadMove(o Observation) Plan {
	s, set := o.Store, o.Settings
	if !set.TransferStoreLeadership || !s.RaftLeader || set.ElectionTimeout <= 0 {
		return nil
	}
	if set.ElectionTimeout+set.LoopInterval >= set.TTL-set.SafetyMargin {
		return nil
	}
	if s.StableSince.IsZero() || o.Now.Sub(s.StableSince) < StoreSettle(set) {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(s.Peers)) {
		p := s.Peers[name]
		m, ok := o.Cluster.Members[name]
		if !p.Active || !p.CaughtUp || !ok || m.Role != RoleStandby || !m.Healthy || !m.Streaming {
			continue
		}
		return Plan{{Kind: MoveStoreLead, Target: name,
			Reason: fmt.Sprintf("raft leadership off the primary: %s is reachable and caught up, the store stable for %s", name, o.Now.Sub(s.StableSince).Round(time.Second))}}
	}
	return nil
}
