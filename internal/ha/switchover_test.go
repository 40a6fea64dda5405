package ha

import (
	"reflect"
	"testing"
	"time"
)

func switchoverCluster() Cluster {
	c := cluster("self",
		Member{Name: "self", Role: RolePrimary, Healthy: true, WalLSN: 0x3000000},
		Member{Name: "n2", Role: RoleStandby, Healthy: true, Streaming: true, Following: "self", ReceivedLSN: 0x3000000},
		Member{Name: "n3", Role: RoleStandby, Healthy: true, Streaming: false, Following: "self", ReceivedLSN: 0x1000000},
	)
	c.Config = DefaultClusterConfig()
	return c
}

func TestSwitchoverChecks(t *testing.T) {
	cases := []struct {
		name      string
		edit      func(*Cluster)
		candidate string
		failing   []string
	}{
		{"caught-up streaming standby passes every check", nil, "n2", nil},
		{"standby not streaming is refused", nil, "n3", []string{"candidate streaming from the primary", "candidate caught up"}},
		{"unknown candidate is refused", nil, "n9", []string{"candidate known"}},
		{"detached candidate is refused", func(c *Cluster) { c.Config.Detached = []string{"n2"} }, "n2", []string{"candidate not detached"}},
		{"async standby in sync mode is refused", func(c *Cluster) {
			c.Config.Mode = ModeSync
			c.Sync = &SyncState{Members: []string{"n3"}, Quorum: 1}
		}, "n2", []string{"candidate synchronous"}},
		{"another operation under way is refused", func(c *Cluster) { c.Switchover = &Switchover{From: "self", To: "n3"} }, "n2", []string{"no operation under way"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := switchoverCluster()
			if tc.edit != nil {
				tc.edit(&c)
			}
			var failing []string
			for _, f := range Failed(SwitchoverChecks(c, "self", tc.candidate)) {
				failing = append(failing, f.Name)
			}
			if !reflect.DeepEqual(failing, tc.failing) {
				t.Fatalf("failing = %v, want %v", failing, tc.failing)
			}
		})
	}
	if got := BestSwitchoverCandidate(switchoverCluster(), "self"); got != "n2" {
		t.Fatalf("best candidate = %q, want n2", got)
	}
}

func TestPrimaryHandsOverOnlyWhenDue(t *testing.T) {
	base := Observation{Now: t0, Self: "self", Settings: settings(), StoreOK: true,
		Local: runningPrimary(0x3000000), Memory: Memory{HoldsLeader: true, LastRenew: t0}}
	cases := []struct {
		name string
		sw   *Switchover
		want []Kind
	}{
		{"switchover now: renew, then hand over", &Switchover{From: "self", To: "n2"}, []Kind{RenewLeader, HandOver}},
		{"switchover scheduled later: carry on", &Switchover{From: "self", To: "n2", At: t0.Add(time.Hour)}, []Kind{RenewLeader, EnsureSlots}},
		{"switchover to a lagging standby: request dropped with the reason", &Switchover{From: "self", To: "n3"}, []Kind{RenewLeader, EnsureSlots, ClearSwitchover}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.Cluster = switchoverCluster()
			o.Cluster.Switchover = tc.sw
			if got := Decide(o).Kinds(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSwitchoverCandidateTakesOverAndOthersWait(t *testing.T) {
	c := cluster("")
	c.Switchover = &Switchover{From: "n1", To: "self"}
	o := Observation{Now: t0, Self: "self", Settings: settings(), StoreOK: true, Cluster: c,
		Local: runningStandby(0x3000000, "n1"), Memory: Memory{LeaderLostAt: t0.Add(-100 * time.Millisecond)}}
	if got := Decide(o).Kinds(); !reflect.DeepEqual(got, []Kind{AcquireLeader, ReserveTimeline, Promote}) {
		t.Fatalf("candidate plan = %v", got)
	}
	o.Self = "n3"
	if got := Decide(o).Kinds(); !reflect.DeepEqual(got, []Kind{Wait}) {
		t.Fatalf("bystander plan = %v, want wait", got)
	}
}
