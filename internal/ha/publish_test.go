package ha

import (
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
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
		{"heartbeat due, positions moved: write", quiet, t0.Add(-set.Heartbeat()), moved, true},
		{"heartbeat due, nothing moved: the lease is renewed, the record not rewritten", quiet, t0.Add(-set.Heartbeat()), prev, false},
		{"nothing moved for ten heartbeats: refresh the record", quiet, t0.Add(-10 * set.Heartbeat()), prev, true},
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
		last     lsn.LSN
		lastAt   time.Time
		cur      lsn.LSN
		want     lsn.LSN
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

func TestSlotMembers(t *testing.T) {
	set := settings()
	set.SlotRetention = time.Hour
	o := Observation{Now: t0, Self: "n1", Peers: []string{"n1", "n2", "n3", "n4"}, Settings: set, StoreOK: true,
		Local: Local{Running: true, Healthy: true, Streamers: []string{"n2"}},
		Memory: Memory{PrimarySince: t0.Add(-3 * time.Hour), LastStreaming: map[string]time.Time{
			"n2": t0, "n3": t0.Add(-2 * time.Hour), "n4": t0.Add(-30 * time.Minute)}}}
	keep, expired := SlotMembers(o)
	if len(keep) != 2 || keep[0] != "n2" || keep[1] != "n4" || len(expired) != 1 || expired[0] != "n3" {
		t.Fatalf("keep %v, expired %v; want [n2 n4] and [n3] (n3 has not streamed for 2 h, retention 1 h)", keep, expired)
	}
	a := slotsAction(o)
	if a.Kind != EnsureSlots || len(a.Members) != 2 || a.Reason == "" {
		t.Fatalf("slots action %+v: want the kept members and a reason naming n3", a)
	}

	// A member this primary never saw stream gets the full retention from
	// the promotion (a new primary, or an agent restarted, keeps slots).
	fresh := o
	fresh.Memory = Memory{PrimarySince: t0.Add(-10 * time.Minute)}
	fresh.Local.Streamers = nil
	if keep, expired := SlotMembers(fresh); len(keep) != 3 || len(expired) != 0 {
		t.Fatalf("a primary of 10 minutes dropped slots: keep %v, expired %v", keep, expired)
	}
	old := fresh
	old.Memory.PrimarySince = t0.Add(-2 * time.Hour)
	if _, expired := SlotMembers(old); len(expired) != 3 {
		t.Fatalf("members never seen streaming in 2 h of primacy kept their slots: expired %v", expired)
	}
	back := old
	back.Cluster.Members = map[string]Member{"n3": standbyMember("n3", 0x5000000, 95)}
	if _, expired := SlotMembers(back); len(expired) != 2 || expired[0] != "n2" || expired[1] != "n4" {
		t.Fatalf("a member publishing again must get its slot back to stream: expired %v, want [n2 n4]", expired)
	}
	forever := old
	forever.Settings.SlotRetention = 0
	if keep, expired := SlotMembers(forever); len(keep) != 3 || len(expired) != 0 {
		t.Fatalf("slot_retention 0 must keep every slot: keep %v, expired %v", keep, expired)
	}
}

func TestCallbackEvents(t *testing.T) {
	cases := []struct {
		last, prev, cur Role
		want            string
	}{
		{"", RolePrimary, RolePrimary, ""},
		{"", "", RoleNone, ""},
		{"", "", RoleStandby, "on_start"},
		{"", RoleNone, RolePrimary, "on_start"},
		{"", RoleStandby, RoleNone, "on_stop"},
		{"", RolePrimary, RoleNone, "on_stop"},
		{"", RoleStandby, RolePrimary, "on_promote,on_role_change"},
		{"", RolePrimary, RoleStandby, "on_demote,on_role_change"},
		{RolePrimary, RoleNone, RoleStandby, "on_start,on_demote,on_role_change"},
		{RoleStandby, RoleNone, RolePrimary, "on_start,on_promote,on_role_change"},
		{RoleStandby, RoleNone, RoleStandby, "on_start"},
	}
	for _, tc := range cases {
		got := ""
		for i, e := range CallbackEvents(tc.last, tc.prev, tc.cur) {
			if i > 0 {
				got += ","
			}
			got += e
		}
		if got != tc.want {
			t.Errorf("%q (last running %q) → %q: %q, want %q", tc.prev, tc.last, tc.cur, got, tc.want)
		}
	}
}
