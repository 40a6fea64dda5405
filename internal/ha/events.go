package ha

// The cluster history (dcs.Event.Action) records each event under a Kind.
// A destructive plan step is recorded under its own step kind (actions.go);
// the Event kinds below are everything else the history holds: what a node
// observed, what the agent did outside a plan, and what an operator asked
// for with ctl. They are never plan steps.
//
// The strings are the wire format of history entries in the store: entries
// written by older versions must still read the same, so a value never
// changes once released.
const (
	// Observed by an agent.
	EventLeaderLost        Kind = "leader-lost"         // the leader key of Target is gone
	EventHealthCheckFailed Kind = "health-check-failed" // the primary failed its health check
	EventPostmasterExit    Kind = "postmaster-exit"     // the postmaster exited unexpectedly
	EventIsolated          Kind = "isolated"            // no trusted address answers
	EventConnected         Kind = "connected"           // a trusted address answers again
	EventDiskOK            Kind = "disk-ok"             // free space back above disk.warn
	EventDiskWarn          Kind = "disk-warn"           // free space below disk.warn
	EventDiskCritical      Kind = "disk-critical"       // free space below disk.critical

	// Done by an agent outside a plan step, or as one part of a step.
	EventSwitchoverStop Kind = "switchover-stop" // the primary starts its clean stop for a switchover to Target
	EventMoveDataAside  Kind = "move-data-aside" // a rebuild keeps the old data directory
	EventDropSlot       Kind = "drop-slot"       // the primary dropped the replication slot Target
	EventClusterRestore Kind = "cluster-restore" // a whole-cluster restore on its target node: started, ok or failed
	EventCallback       Kind = "callback"        // a user callback (Target: its event) ran or was skipped
	EventVIP            Kind = "vip"             // setting the virtual IP Target failed
	EventVIPAdd         Kind = "vip-add"         // this node took the virtual IP Target
	EventVIPDel         Kind = "vip-del"         // this node gave up the virtual IP Target
	EventJobInterrupted Kind = "job-interrupted" // a job (Target: its id) was cut short by an agent restart
	EventJobRecovered   Kind = "job-recovered"   // a job found its work done after an agent restart
	EventJobRefused     Kind = "job-refused"     // a job was not started
	EventJobFailed      Kind = "job-failed"      // a job failed

	// Asked for by an operator through ctl (Node "ctl", By the operator,
	// but for a replay request). ctl stop is recorded as Stop, with the
	// stopped node as Target.
	EventSwitchoverRequest     Kind = "switchover-request"
	EventSwitchoverCancel      Kind = "switchover-cancel"
	EventTakeoverRequest       Kind = "takeover-request"
	EventReinitRequest         Kind = "reinit-request"
	EventReplayRequest         Kind = "replay-request" // Node: the standby; By: "ctl"
	EventClusterRestoreRequest Kind = "cluster-restore-request"
	EventClusterRestoreAbort   Kind = "cluster-restore-abort"
	EventStart                 Kind = "start" // ctl start: a node stopped by ctl stop may run again
	EventRemove                Kind = "remove"
	EventAdd                   Kind = "add"
	EventStoreLeaderMove       Kind = "store-leader-move"
	EventConfig                Kind = "config" // the cluster configuration changed (Reason: how)
	EventJobCreate             Kind = "job-create"
	EventJobEdit               Kind = "job-edit"
	EventJobDelete             Kind = "job-delete"
	EventJobStart              Kind = "job-start" // a run requested by hand
	EventJobStop               Kind = "job-stop"
	EventUserAdd               Kind = "user-add" // an API user (Target) was created or given a new token
	EventUserRemove            Kind = "user-remove"
	EventAPIRefused            Kind = "api-refused" // a mutating API call without a valid token (401) or role (403); Target: the route
)

// Event is the kind recording that this node's disk reached level l.
func (l DiskLevel) Event() Kind {
	switch l {
	case DiskOK:
		return EventDiskOK
	case DiskWarn:
		return EventDiskWarn
	}
	return EventDiskCritical
}
