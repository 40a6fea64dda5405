package alerts

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// Event is one history event the agent recorded (the fields of dcs.Event
// that matter here), with what the agent knew beside it.
type Event struct {
	Node   string
	Action ha.Kind
	Target string
	Reason string
	Result string
	Time   time.Time
	// JobKind is the kind of the job a job event names ("" unknown).
	JobKind string
	// LeaderLost names the leader whose loss this node observed last,
	// shortly before a promotion ("" unknown).
	LeaderLost string
}

// The Reasons a promotion is recorded with (ha.Decide's promotePlan)
// when it ends a switchover (planned by an operator: no alert) and a
// takeover. TestFromEvent takes them from ha.Decide itself.
const (
	switchoverReason = "switchover"
	takeoverReason   = "takeover"
)

// FromEvent returns the alert an event raises, or false when it raises
// none. A disk-ok event returns the resolution of the disk-low alert.
//
// Every one of these events is recorded by the node it happened on, and
// only that node's agent sees it: one event, one alert, however many
// members the cluster has.
func FromEvent(e Event) (Alert, bool) {
	at := e.Time
	switch e.Action {
	case ha.Promote:
		if !strings.HasPrefix(e.Result, "ok") || e.Reason == switchoverReason {
			return Alert{}, false
		}
		from := ""
		if e.LeaderLost != "" && e.LeaderLost != e.Node {
			from = " (" + e.LeaderLost + " lost the leader key)"
		}
		summary := fmt.Sprintf("failover: %s is the new primary%s", e.Node, from)
		if e.Reason == takeoverReason {
			summary = fmt.Sprintf("failover: %s is the new primary by an operator's takeover%s", e.Node, from)
		}
		return Alert{Kind: KindFailover, Severity: Critical, Subject: e.Node, Summary: summary,
			Details: detail("promotion", e.Reason, e.Result), Time: at}, true
	case ha.Fence:
		return Alert{Kind: KindFence, Severity: Critical, Subject: e.Node,
			Summary: fmt.Sprintf("fence: %s stopped its primary (it could not hold the leader lease)", e.Node),
			Details: detail("fence", e.Reason, e.Result), Time: at}, true
	case ha.EventJobFailed:
		kind, what := KindJobFailed, "job"
		if e.JobKind == "drill" {
			kind, what = KindDrillFailed, "drill"
		}
		jobKind := ""
		if e.JobKind != "" {
			jobKind = " (" + e.JobKind + ")"
		}
		return Alert{Kind: kind, Severity: Warning, Subject: e.Target,
			Summary: fmt.Sprintf("%s failed: %s%s on %s", what, e.Target, jobKind, e.Node),
			Details: detail("run", e.Reason, e.Result) + "\n'pgguard jobs runs " + e.Target + "' shows the run and its log", Time: at}, true
	case ha.EventDiskWarn, ha.EventDiskCritical:
		sev, level := Warning, "warn"
		if e.Action == ha.EventDiskCritical {
			sev, level = Critical, "critical"
		}
		return Alert{Kind: KindDiskLow, Severity: sev, Subject: e.Node, Condition: true,
			Summary: fmt.Sprintf("disk low: %s free space below disk.%s", e.Node, level),
			Details: e.Reason, Time: at}, true
	case ha.EventDiskOK:
		return Alert{Kind: KindDiskLow, Severity: Warning, Subject: e.Node, Condition: true, Resolved: true,
			Summary: fmt.Sprintf("disk space on %s back above disk.warn", e.Node), Details: e.Reason, Time: at}, true
	}
	return Alert{}, false
}

func detail(what, reason, result string) string {
	var b strings.Builder
	if reason != "" {
		fmt.Fprintf(&b, "%s: %s", what, reason)
	}
	if result != "" {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "result: %s", result)
	}
	return b.String()
}
