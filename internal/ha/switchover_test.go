package ha

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
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

// The candidate promotes without the archive only when the old primary
// recorded, for this request, that it had received the shutdown
// checkpoint, and its own received position agrees; a key released by a
// primary that died mid-switchover, or a stale record, leaves
// restore_command on, so WAL only the archive holds is still replayed.
func TestSwitchoverCandidatePromotesWithoutTheArchiveOnlyAfterAHandOver(t *testing.T) {
	cases := []struct {
		name       string
		handedOver lsn.LSN
		received   lsn.LSN
		want       bool
	}{
		{"handed over, and received past the checkpoint", 0x2FFFFF0, 0x3000000, true},
		{"no hand-over recorded (the primary died)", 0, 0x3000000, false},
		{"handed over, but this node reports less", 0x3000000, 0x2FFFFF0, false},
		{"handed over, position unknown", 0x2FFFFF0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("")
			c.Switchover = &Switchover{From: "n1", To: "self", Revision: 7, HandedOver: tc.handedOver}
			local := runningStandby(0x3000000, "n1")
			local.ReceivedLSN = tc.received
			o := Observation{Now: t0, Self: "self", Settings: settings(), StoreOK: true, Cluster: c,
				Local: local, Memory: Memory{LeaderLostAt: t0.Add(-100 * time.Millisecond)}}
			plan := Decide(o)
			if got := plan.Kinds(); !reflect.DeepEqual(got, []Kind{AcquireLeader, ReserveTimeline, Promote}) {
				t.Fatalf("plan = %v", got)
			}
			if got := plan[len(plan)-1].NoArchive; got != tc.want {
				t.Fatalf("promote NoArchive = %v, want %v", got, tc.want)
			}
		})
	}
}

// With every standby still catching up (after a bulk load), a switchover
// without a named candidate waits for the most advanced one instead of
// refusing with "(none)"; a standby that cannot become ready by itself
// (no_failover) is never the one waited for.
func TestNearestCandidateIsTheMostAdvancedThatOnlyLags(t *testing.T) {
	c := switchoverCluster()
	c.Members["self"] = Member{Name: "self", Role: RolePrimary, Healthy: true, WalLSN: 0x9000000}
	if got := BestSwitchoverCandidate(c, "self"); got != "" {
		t.Fatalf("best = %q with every standby far behind, want none", got)
	}
	if got := NearestSwitchoverCandidate(c, "self"); got != "n2" {
		t.Fatalf("nearest = %q, want n2 (the most advanced, only lagging)", got)
	}
	n2 := c.Members["n2"]
	n2.NoFailover = true
	c.Members["n2"] = n2
	if got := NearestSwitchoverCandidate(c, "self"); got != "n3" {
		t.Fatalf("nearest = %q with n2 marked no_failover, want n3", got)
	}
}

// The candidate of a due switchover streams without restore_command, and
// turns it on again once the request is gone or names another node.
func TestSwitchoverCandidatePreparesWithoutTheArchive(t *testing.T) {
	c := cluster("n1", Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x3000000})
	o := Observation{Now: t0, Self: "self", Settings: settings(), StoreOK: true, Cluster: c,
		Local: runningStandby(0x3000000, "n1"), Memory: Memory{}}
	cases := []struct {
		name       string
		sw         *Switchover
		restoreOff bool
		want       *bool // nil: no ArchiveFetch step
	}{
		{"no switchover, restore on: nothing", nil, false, nil},
		{"switchover to this node: off", &Switchover{From: "n1", To: "self"}, false, ptr(true)},
		{"already off: nothing", &Switchover{From: "n1", To: "self"}, true, nil},
		{"scheduled later: not yet", &Switchover{From: "n1", To: "self", At: t0.Add(time.Minute)}, false, nil},
		{"switchover to another node while off: on again", &Switchover{From: "n1", To: "n3"}, true, ptr(false)},
		{"switchover gone while off: on again", nil, true, ptr(false)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := o
			o.Cluster.Switchover = tc.sw
			o.Local.RestoreOff = tc.restoreOff
			plan := Decide(o)
			var got *bool
			for _, a := range plan {
				if a.Kind == ArchiveFetch {
					got = ptr(a.NoArchive)
					if a.Target != "n1" {
						t.Fatalf("archive-fetch target %q, want the leader n1", a.Target)
					}
				}
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("plan %v: archive-fetch off=%v, want %v", plan.Kinds(), deref(got), deref(tc.want))
			}
		})
	}
}

func ptr(b bool) *bool { return &b }

func deref(b *bool) string {
	if b == nil {
		return "none"
	}
	return fmt.Sprint(*b)
}
