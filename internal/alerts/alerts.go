// Package alerts sends pgguard's alerts without Prometheus: a JSON webhook
// and a plain-text e-mail for failovers, fencing, split members, failed
// jobs and drills, low disk space and overdue backups. It owns what raises
// an alert (FromEvent, Conditions: pure), de-duplication (Dedup), and the
// delivery: one bounded queue per receiver, retried with backoff.
//
// It must never block its caller (the agent's HA loop hands an event in
// and moves on: a full queue drops and counts), never stop the agent over
// a send that failed (it is logged and counted), and never carry a secret:
// every text is scrubbed before it leaves (Scrubber), and logs name a
// receiver by its scheme and host only.
package alerts

import (
	"context"
	"errors"
	"time"
)

// Kind is what an alert is about. The strings are part of the webhook's
// documented body (docs/ALERTS.md): never renamed once released.
type Kind string

// The kinds of alert.
const (
	KindFailover    Kind = "failover"     // a standby was promoted without a switchover (automatic failover, or takeover)
	KindFence       Kind = "fence"        // a primary stopped itself: it lost or could not renew the leader lease
	KindSplit       Kind = "split"        // more than one member runs as primary, or a member's data diverged from the cluster's
	KindJobFailed   Kind = "job-failed"   // a backup job's run failed
	KindDrillFailed Kind = "drill-failed" // a restore drill failed
	KindDiskLow     Kind = "disk-low"     // free space of the data or WAL volume below disk.warn or disk.critical
	KindBackupAge   Kind = "backup-age"   // a scheduled backup's newest success is older than its limit
)

// Severity says how urgent an alert is.
type Severity string

// Severities, least urgent first.
const (
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

func (s Severity) rank() int {
	if s == Critical {
		return 2
	}
	return 1
}

// Alert is one thing to tell the operator, before it is stamped with its
// cluster, sender and key.
type Alert struct {
	Kind     Kind
	Severity Severity
	// Subject is what the alert is about within its kind (a node, a
	// job; "" for the cluster as a whole); with the kind and the cluster
	// it makes the key that de-duplication goes by.
	Subject string
	// Summary is one line; Details, optional, more.
	Summary string
	Details string
	// Condition: the alert holds until it resolves (disk space, split,
	// backup age) rather than happening once (failover, fence, a failed
	// run). Resolved: this is the notice that the condition ended.
	Condition bool
	Resolved  bool
	// For is how long a condition must be observed before it is sent
	// (Notifier.Observe), so that a passing state raises nothing.
	For time.Duration
	// Time is when it happened (the Notifier's clock when zero).
	Time time.Time
}

// Key is the de-duplication key of an alert of kind about subject in
// cluster: "failover/main/n2", "split/main".
func Key(kind Kind, cluster, subject string) string {
	k := string(kind) + "/" + cluster
	if subject != "" {
		k += "/" + subject
	}
	return k
}

// Message is an alert as it is sent: the webhook's JSON body, field for
// field, and what the e-mail says. Fields are only ever added.
type Message struct {
	// Version of this shape: 1.
	Version int    `json:"version"`
	Cluster string `json:"cluster"`
	// Node is the member that sent it: the one that recorded the event,
	// or the leader-lease holder for a cluster-wide condition.
	Node     string   `json:"node"`
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	// Status is "firing", or "resolved" when a condition ended.
	Status  string    `json:"status"`
	Summary string    `json:"summary"`
	Details string    `json:"details,omitempty"`
	Time    time.Time `json:"time"`
	Key     string    `json:"key"`
}

// Message statuses.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Sink delivers messages to one receiver. Send makes one attempt, bounded
// by ctx, and wraps with Permanent an error no retry can fix (a refused
// request, a rejected recipient); the Notifier retries the others.
type Sink interface {
	// Name is how logs name the receiver: no credential, no path.
	Name() string
	Send(ctx context.Context, m Message) error
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying will not fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
