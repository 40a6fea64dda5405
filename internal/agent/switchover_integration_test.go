package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func TestSwitchoverUnderLoadLosesNoWrite(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{})
	ctx := context.Background()
	old := c.Leader()

	// A candidate that does not exist is refused and nothing changes.
	out, err := tryCtl(c, "switchover", "--to", "nosuchnode", "--yes")
	if err == nil || !strings.Contains(out, "nosuchnode") {
		t.Fatalf("switchover to an unknown node: err=%v output:\n%s", err, out)
	}
	check := ctl(t, c, "switchover", "--check")
	if !strings.Contains(check, "[pass] candidate streaming from the primary") {
		t.Fatalf("--check output lacks the streaming condition:\n%s", check)
	}
	if r, _ := c.Status(); r.Leader != old {
		t.Fatalf("--check changed the leader to %s", r.Leader)
	}

	writes := c.StartWrites("writes flowing", c.Layout.DSN(), 10*time.Millisecond, 50)
	started := time.Now()
	res := ctl(t, c, "switchover", "--yes")
	r := c.WaitFor("a new leader with both others streaming", 60*time.Second, func(r status.Report) bool {
		return r.Leader != old && r.Healthy(len(c.Layout.Nodes))
	})
	c.WaitFor("writes after the switchover", 10*time.Second, func(status.Report) bool {
		return writes.AckedAfter(time.Now().Add(-200 * time.Millisecond))
	})
	acks := writes.Stop()
	c.CheckNoWriteLost("switchover", acks)
	// The agents tell a standby that cannot replay the leader's timeline
	// by the timeline IDENTIFY_SYSTEM reports on it (the replay timeline):
	// on these healthy standbys it is the new primary's.
	var leaderTLI int
	for _, m := range r.Members {
		if m.Name == r.Leader {
			leaderTLI = m.Timeline
		}
	}
	for _, m := range r.Members {
		if m.Name == r.Leader {
			continue
		}
		var tli int
		var last error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			tli, last = pg.ReplayTimelineAt(ctx, c.NodeDSN(m.Name))
			if (last == nil && tli == leaderTLI) || time.Now().After(deadline) {
				break
			}
		}
		if last != nil || tli != leaderTLI {
			t.Fatalf("replay timeline of %s: %d (err %v), want the new primary's %d", m.Name, tli, last, leaderTLI)
		}
	}
	if !hasEvent(history(t, c), old, ha.HandOver, started) {
		t.Fatalf("no hand-over recorded for %s", old)
	}
	t.Logf("switchover %s → %s: %s; client write gap %s, 0 of %d writes lost", old, r.Leader, strings.TrimSpace(res),
		testcluster.MaxGap(acks, started).Round(time.Millisecond), len(acks))
}
