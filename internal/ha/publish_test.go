package ha

import (
	"testing"
	"time"
)

func TestPublishDue(t *testing.T) {
	set := settings() // TTL 3 s: heartbeat 1 s
	if got := set.Heartbeat(); got != set.TTL/3 {
		t.Fatalf("heartbeat %s, want a third of the TTL %s", got, set.TTL)
	}
	led := cluster("n1", standbyMember("n2", 0x5000000, 95))
	quiet := Observation{Now: t0, Self: "n2", Settings: set, StoreOK: true, Cluster: led}
	prev := standbyMember("n2", 0x5000000, 95)
	prev.Streaming, prev.Following = true, "n1"
	moved := prev
	moved.ReceivedLSN, moved.ReplayedLSN, moved.UpdatedAt = 0x6000000, 0x6000000, t0
	recent := t0.Add(-set.Heartbeat() / 2)
	cases := []struct {
		name   string
		obs    Observation
		prevAt time.Time
		next   Member
		want   bool
	}{
		{"nothing written yet", quiet, time.Time{}, prev, true},
		{"only positions moved, heartbeat not due: wait", quiet, recent, moved, false},
		{"heartbeat due", quiet, t0.Add(-set.Heartbeat()), moved, true},
		{"stream lost: at once", quiet, recent, func() Member { m := prev; m.Streaming = false; return m }(), true},
		{"new upstream: at once", quiet, recent, func() Member { m := prev; m.Following = "n3"; return m }(), true},
		{"health lost: at once", quiet, recent, func() Member { m := prev; m.Healthy = false; return m }(), true},
		{"no leader: every loop", func() Observation { o := quiet; o.Cluster.Leader = nil; return o }(), recent, moved, true},
		{"leader lost a moment ago: every loop", func() Observation { o := quiet; o.Memory.LeaderLostAt = t0; return o }(), recent, moved, true},
		{"switchover under way: every loop", func() Observation {
			o := quiet
			o.Cluster.Switchover = &Switchover{From: "n1", To: "n2"}
			return o
		}(), recent, moved, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := PublishDue(tc.obs, prev, tc.prevAt, tc.next)
			if got != tc.want {
				t.Fatalf("PublishDue = %v (%q), want %v", got, why, tc.want)
			}
		})
	}
}

func TestPublishDueSeesReplicationChanges(t *testing.T) {
	o := Observation{Now: t0, Self: "n1", Settings: settings(), StoreOK: true, Cluster: cluster("n1")}
	prev := Member{Name: "n1", Role: RolePrimary, State: "running", Healthy: true, Timeline: 2,
		Replication: map[string]Replica{"n2": {State: "streaming", SyncState: "async", SentLSN: 1}}}
	recent := t0.Add(-100 * time.Millisecond)
	lagging := prev
	lagging.Replication = map[string]Replica{"n2": {State: "streaming", SyncState: "async", SentLSN: 99, ReplayLagSeconds: 2}}
	if due, why := PublishDue(o, prev, recent, lagging); due {
		t.Fatalf("a standby's position moved and the record was due (%q); want it at the heartbeat", why)
	}
	sync := prev
	sync.Replication = map[string]Replica{"n2": {State: "streaming", SyncState: "sync"}}
	gone := prev
	gone.Replication = nil
	newTL := prev
	newTL.History = []TimelineSwitch{{TLI: 1, Switch: 0x3000000}}
	for name, next := range map[string]Member{"standby became synchronous": sync, "standby disconnected": gone, "history grew": newTL} {
		if due, _ := PublishDue(o, prev, recent, next); !due {
			t.Errorf("%s: record not due, want it published at once", name)
		}
	}
}

func TestOptimeDue(t *testing.T) {
	set := settings()
	o := Observation{Now: t0, Self: "n1", Settings: set, StoreOK: true, Cluster: cluster("n1")}
	recent := t0.Add(-100 * time.Millisecond)
	old := t0.Add(-set.Heartbeat())
	cases := []struct {
		name     string
		obs      Observation
		last     LSN
		lastAt   time.Time
		cur      LSN
		want     LSN
		describe string
	}{
		{"first renewal", o, 0, time.Time{}, 0x500, 0x500, "written"},
		{"unchanged", o, 0x500, old, 0x500, 0, "not rewritten"},
		{"moved, heartbeat not due", o, 0x500, recent, 0x600, 0, "waits"},
		{"moved, heartbeat due", o, 0x500, old, 0x600, 0x600, "written"},
		{"moved during a switchover", func() Observation {
			x := o
			x.Cluster.Switchover = &Switchover{From: "n1", To: "n2"}
			return x
		}(), 0x500, recent, 0x600, 0x600, "written at once"},
		{"unknown position", o, 0x500, old, 0, 0, "never written as zero"},
	}
	for _, tc := range cases {
		if got := OptimeDue(tc.obs, tc.last, tc.lastAt, tc.cur); got != tc.want {
			t.Errorf("%s: OptimeDue = %s, want %s (%s)", tc.name, got, tc.want, tc.describe)
		}
	}
}
