package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

// promoteReason is the Reason ha.Decide gives the promotion of a standby
// in obs: the alert for a promotion depends on it.
func promoteReason(t *testing.T, obs ha.Observation) string {
	t.Helper()
	for _, a := range ha.Decide(obs) {
		if a.Kind == ha.Promote {
			return a.Reason
		}
	}
	t.Fatalf("no promotion in the plan %+v", ha.Decide(obs))
	return ""
}

// A standby that saw the leader key of n2 go a second ago, alone with
// n3 (behind it).
func candidate(edit func(*ha.Cluster)) ha.Observation {
	c := ha.Cluster{SystemID: "42", Members: map[string]ha.Member{
		"n3": {Name: "n3", Role: ha.RoleStandby, Healthy: true, Timeline: 1, ReceivedLSN: 0x2000000, ReplayedLSN: 0x2000000, Revision: 200, UpdatedAt: t0},
	}, Optime: 0x3000000, Revision: 100}
	edit(&c)
	pos := lsn.LSN(0x3000000)
	return ha.Observation{Now: t0, Self: "n1", StoreOK: true, Peers: []string{"n1", "n2", "n3"},
		Settings: ha.Settings{TTL: 4 * time.Second, SafetyMargin: 1500 * time.Millisecond, LoopInterval: time.Second, MaxLagOnFailover: 1 << 20, PrimaryStartTimeout: 30 * time.Second},
		Cluster:  c,
		Local: ha.Local{Data: ha.DataValid, SystemID: "42", Running: true, Healthy: true, InRecovery: true, Timeline: 1,
			ReceivedLSN: pos, ReplayedLSN: pos, ControlState: ha.ControlInArchiveRecov, ControlTLI: 1},
		Memory: ha.Memory{LeaderLostAt: t0.Add(-time.Second), LeaderLostRev: 100}}
}

func TestFromEvent(t *testing.T) {
	election := promoteReason(t, candidate(func(*ha.Cluster) {}))
	switchover := promoteReason(t, candidate(func(c *ha.Cluster) { c.Switchover = &ha.Switchover{From: "n2", To: "n1", By: "op"} }))
	takeover := promoteReason(t, candidate(func(c *ha.Cluster) {
		c.Config.Paused = true
		c.Takeover = &ha.Takeover{To: "n1", By: "op"}
	}))
	cases := []struct {
		name     string
		e        Event
		kind     Kind
		severity Severity
		subject  string
		summary  string // a part of it
		resolved bool
	}{
		{"an automatic failover: the new primary sends it, naming the lost one",
			Event{Node: "n1", Action: ha.Promote, Reason: election, Result: "ok in 120ms", LeaderLost: "n2"},
			KindFailover, Critical, "n1", "failover: n1 is the new primary (n2 lost the leader key)", false},
		{"a takeover is a failover an operator asked for",
			Event{Node: "n1", Action: ha.Promote, Reason: takeover, Result: "ok in 90ms"},
			KindFailover, Critical, "n1", "by an operator's takeover", false},
		{"a switchover is planned: no alert", Event{Node: "n1", Action: ha.Promote, Reason: switchover, Result: "ok in 80ms"}, "", "", "", "", false},
		{"a promotion that failed is no failover", Event{Node: "n1", Action: ha.Promote, Reason: election, Result: "failed: timeout"}, "", "", "", "", false},
		{"a fence", Event{Node: "n2", Action: ha.Fence, Reason: "watchdog: no lease renewal for 2s", Result: "ok"},
			KindFence, Critical, "n2", "fence: n2 stopped its primary", false},
		{"a failed backup job", Event{Node: "n1", Action: ha.EventJobFailed, Target: "nightly", Reason: "full: exit status 1", Result: "failed", JobKind: "full"},
			KindJobFailed, Warning, "nightly", "job failed: nightly (full) on n1", false},
		{"a failed drill", Event{Node: "n1", Action: ha.EventJobFailed, Target: "weekly-drill", Reason: "drill: check failed", Result: "failed", JobKind: "drill"},
			KindDrillFailed, Warning, "weekly-drill", "drill failed: weekly-drill (drill) on n1", false},
		{"a failed job whose kind is unknown", Event{Node: "n1", Action: ha.EventJobFailed, Target: "gone", Result: "failed"},
			KindJobFailed, Warning, "gone", "job failed: gone on n1", false},
		{"disk below warn", Event{Node: "n3", Action: ha.EventDiskWarn, Reason: "1.0 GiB free of 20.0 GiB"},
			KindDiskLow, Warning, "n3", "disk low: n3 free space below disk.warn", false},
		{"disk below critical", Event{Node: "n3", Action: ha.EventDiskCritical, Reason: "0.5 GiB free"},
			KindDiskLow, Critical, "n3", "below disk.critical", false},
		{"disk back above warn resolves it", Event{Node: "n3", Action: ha.EventDiskOK},
			KindDiskLow, Warning, "n3", "disk space on n3 back above disk.warn", true},
		{"other events raise nothing", Event{Node: "n1", Action: ha.EventLeaderLost, Target: "n2"}, "", "", "", "", false},
		{"a rewind raises nothing", Event{Node: "n2", Action: ha.Rewind, Result: "ok"}, "", "", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := FromEvent(tc.e)
			if tc.kind == "" {
				if ok {
					t.Fatalf("raised %+v, want nothing", a)
				}
				return
			}
			if !ok || a.Kind != tc.kind || a.Severity != tc.severity || a.Subject != tc.subject || a.Resolved != tc.resolved || !strings.Contains(a.Summary, tc.summary) {
				t.Fatalf("raised %v %+v, want %s %s about %s saying %q (resolved %v)", ok, a, tc.severity, tc.kind, tc.subject, tc.summary, tc.resolved)
			}
			if (tc.kind == KindDiskLow) != a.Condition {
				t.Errorf("condition = %v", a.Condition)
			}
		})
	}
}
