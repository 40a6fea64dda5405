package ha

import (
	"strings"
	"time"
)

// Kind names one step the agent can take (the constants below), or one
// other event of the cluster history (the Event constants, events.go).
type Kind string

const (
	ClaimInit       Kind = "claim-init"        // take the bootstrap claim in the store
	Initdb          Kind = "initdb"            // create a new data directory
	FinishInit      Kind = "finish-init"       // record the system identifier: cluster exists
	CloneFrom       Kind = "clone"             // base backup of Target into the empty data dir
	AcquireLeader   Kind = "acquire-leader"    // take the leader key in a transaction
	RenewLeader     Kind = "renew-leader"      // refresh the leader lease
	ReleaseLeader   Kind = "release-leader"    // delete the leader key if ours
	StartPrimary    Kind = "start-primary"     // start without standby.signal
	StartStandby    Kind = "start-standby"     // start as a standby following Target ("" = none)
	Promote         Kind = "promote"           // pg_promote
	Fence           Kind = "fence"             // immediate shutdown: stop accepting writes now
	Stop            Kind = "stop"              // fast shutdown
	Follow          Kind = "follow"            // point primary_conninfo at Target and reload
	CrashRecover    Kind = "crash-recover"     // single-user crash recovery for a clean shutdown
	Rewind          Kind = "rewind"            // pg_rewind from Target
	Reinit          Kind = "reinit"            // move the data dir aside and clone from Target
	RestoreStandby  Kind = "restore-standby"   // move the data dir aside and restore the newest backup as a standby of Target
	RestoreCluster  Kind = "restore-cluster"   // restore the requested backup and target as the new primary, then have every other member rebuilt
	EnsureSlots     Kind = "ensure-slots"      // one physical slot per other member
	MoveStoreLead   Kind = "move-store-lead"   // move etcd raft leadership off this node
	SetSyncKey      Kind = "set-sync-key"      // record Members/Quorum as the sync key
	HandOver        Kind = "hand-over"         // switchover: clean stop, wait (bounded) for Target to receive the shutdown checkpoint
	ClearSwitchover Kind = "clear-switchover"  // remove the switchover request
	ClearTakeover   Kind = "clear-takeover"    // remove the takeover request
	ClearReinit     Kind = "clear-reinit"      // remove this node's reinit request
	ReserveTimeline Kind = "reserve-timeline"  // claim the next timeline in the store and make PostgreSQL pick it
	SetSyncNames    Kind = "set-sync-names"    // synchronous_standby_names := Members (none: async; Wildcard: any)
	SetReplayTarget Kind = "set-replay-target" // restart the standby replaying up to Until (zero: no target) and pausing there
	PauseReplay     Kind = "pause-replay"      // pg_wal_replay_pause()
	ResumeReplay    Kind = "resume-replay"     // pg_wal_replay_resume()
	ArchiveFetch    Kind = "archive-fetch"     // a standby of Target: restore_command off (NoArchive) or on again, and reload
	Wait            Kind = "wait"              // nothing to do; Reason says why
)

// Action is one step of a plan.
type Action struct {
	Kind   Kind
	Target string // a member name, for actions aimed at one
	Reason string
	// Members, Quorum and Wildcard carry the sync set of SetSyncKey and
	// SetSyncNames.
	Members  []string
	Quorum   int
	Wildcard bool
	// Until is the recovery target time of SetReplayTarget.
	Until time.Time
	// NoArchive: Promote with restore_command off (the candidate holds
	// every record to replay; the end of recovery would only look up
	// timeline history files through it, at a program start each); for
	// ArchiveFetch, off rather than on.
	NoArchive bool
}

// Destructive reports whether the step changes roles or data, and so is
// recorded in the cluster history.
func (a Action) Destructive() bool {
	switch a.Kind {
	case Initdb, FinishInit, CloneFrom, AcquireLeader, ReleaseLeader, Promote, Fence, Stop,
		StartPrimary, StartStandby, CrashRecover, Rewind, Reinit, RestoreStandby, RestoreCluster, Follow, SetSyncKey, SetSyncNames,
		HandOver, ClearSwitchover, ClearTakeover, ReserveTimeline, SetReplayTarget, PauseReplay, ResumeReplay:
		return true
	}
	return false
}

func (a Action) String() string {
	var b strings.Builder
	b.WriteString(string(a.Kind))
	if a.Target != "" {
		b.WriteString(" " + a.Target)
	}
	if a.Reason != "" {
		b.WriteString(": " + a.Reason)
	}
	return b.String()
}

// Plan is the ordered list of steps for one loop. The agent runs them in
// order and stops at the first that fails.
type Plan []Action

// Kinds lists the kinds of a plan, for tests and logs.
func (p Plan) Kinds() []Kind {
	out := make([]Kind, len(p))
	for i, a := range p {
		out[i] = a.Kind
	}
	return out
}
