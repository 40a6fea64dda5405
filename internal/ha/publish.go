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

// Heartbeat is the longest an agent leaves its member lease unrenewed
// and moved positions (and the primary's optime) unwritten: a third of the
// TTL, so the member lease never comes near expiry.
func (s Settings) Heartbeat() time.Duration {
	if s.TTL <= 0 {
		return s.LoopInterval
	}
	return s.TTL / 3
}

// recordRefreshBeats is how many heartbeats a member record goes
// unwritten while nothing in it changes (not even a position): between
// rewrites a heartbeat only renews the member lease, which keeps the
// record alive without a raft proposal (three fsyncs and a watch event
// for every agent). Three agents rewriting unchanged records every second
// were a quarter of an idle cluster's store traffic.
const recordRefreshBeats = 10

// MemberRecordMaxAge is how old the UpdatedAt of a live member's record
// can be: a record left unwritten for recordRefreshBeats heartbeats, plus
// the TTL its lease outlives a member that died by. Older, the member
// is gone and its record is stale.
func MemberRecordMaxAge(ttl time.Duration) time.Duration {
	return ttl + recordRefreshBeats*Settings{TTL: ttl}.Heartbeat()
}

// PublishDue says whether the agent must write next as its member record,
// given what it last wrote (prev, at prevAt; zero when nothing was written
// yet) and the observation of this loop. When it says no, the agent still
// renews its member lease at each heartbeat.
func PublishDue(o Observation, prev Member, prevAt time.Time, next Member) (bool, string) {
	age := o.Now.Sub(prevAt)
	beat := o.Settings.Heartbeat()
	switch {
	case prevAt.IsZero():
		return true, "first record"
	case electing(o):
		return true, "the cluster is choosing a primary"
	case !sameShape(prev, next):
		return true, "changed"
	case age >= beat && !samePositions(prev, next):
		return true, "positions moved"
	case age >= recordRefreshBeats*beat:
		return true, "refresh"
	}
	return false, ""
}

// samePositions compares the WAL positions and replication figures of
// two records of the same shape.
func samePositions(a, b Member) bool {
	if a.WalLSN != b.WalLSN || a.ReceivedLSN != b.ReceivedLSN || a.ReplayedLSN != b.ReplayedLSN {
		return false
	}
	for name, ra := range a.Replication {
		if b.Replication[name] != ra {
			return false
		}
	}
	return true
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
