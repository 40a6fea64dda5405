package ha

import (
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Every write to the store is a raft proposal that each etcd member
// fsyncs and every watcher hears about, so an idle cluster whose agents
// rewrote their records every loop kept three disks and three CPUs busy
// for nothing. An agent therefore writes its member record and the
// primary's optime only when something a reader acts on has changed, at a
// heartbeat otherwise, and every loop while the cluster chooses a primary
// (candidates wait for each other's positions published after the leader
// loss: see isBestCandidate).

// Heartbeat is the longest an agent leaves its member record (and the
// primary the optime) unwritten while nothing changes: a third of the TTL,
// so the member lease (renewed by the same write) never comes near expiry
// and a reader can call a record older than the TTL stale.
func (s Settings) Heartbeat() time.Duration {
	if s.TTL <= 0 {
		return s.LoopInterval
	}
	return s.TTL / 3
}

// PublishDue says whether the agent must write next as its member record,
// given what it last wrote (prev, at prevAt; zero when nothing was written
// yet) and the observation of this loop.
func PublishDue(o Observation, prev Member, prevAt time.Time, next Member) (bool, string) {
	switch {
	case prevAt.IsZero():
		return true, "first record"
	case electing(o):
		return true, "the cluster is choosing a primary"
	case o.Now.Sub(prevAt) >= o.Settings.Heartbeat():
		return true, "heartbeat"
	case !sameShape(prev, next):
		return true, "changed"
	}
	return false, ""
}

// OptimeDue returns the position the primary should record with this
// renewal, or 0 to renew without writing: the optime is written when it
// moved and the last write is a heartbeat old, or at once during a
// switchover (the candidate compares itself with it).
func OptimeDue(o Observation, last lsn.LSN, lastAt time.Time, cur lsn.LSN) lsn.LSN {
	if cur == 0 || cur == last {
		return 0
	}
	if lastAt.IsZero() || electing(o) || o.Now.Sub(lastAt) >= o.Settings.Heartbeat() {
		return cur
	}
	return 0
}

// electing: a primary is being chosen or handed over, and every position
// must be current.
func electing(o Observation) bool {
	c := o.Cluster
	return c.Leader == nil || c.Switchover != nil || c.Takeover != nil || !o.Memory.LeaderLostAt.IsZero()
}

// sameShape compares two records without the fields that move on their
// own (positions, lag, the time of writing): a change of role, state,
// health, timeline, upstream, problem or of the standbys a primary sees is
// published at once; positions wait for the heartbeat.
func sameShape(a, b Member) bool {
	if a.Name != b.Name || a.Host != b.Host || a.Port != b.Port || a.Role != b.Role || a.State != b.State ||
		a.Healthy != b.Healthy || a.Timeline != b.Timeline || a.Streaming != b.Streaming ||
		a.Following != b.Following || a.NoFailover != b.NoFailover || a.SystemID != b.SystemID ||
		a.Problem != b.Problem || a.Repository != b.Repository || a.Isolated != b.Isolated || a.Delayed != b.Delayed {
		return false
	}
	if len(a.History) != len(b.History) || len(a.Replication) != len(b.Replication) {
		return false
	}
	for i := range a.History {
		if a.History[i] != b.History[i] {
			return false
		}
	}
	for name, ra := range a.Replication {
		rb, ok := b.Replication[name]
		if !ok || ra.State != rb.State || ra.SyncState != rb.SyncState {
			return false
		}
	}
	return true
}
