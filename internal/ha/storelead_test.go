package ha

import (
	"strings"
	"testing"
	"time"
)

func TestStoreLeadMove(t *testing.T) {
	set := settings()
	set.TransferStoreLeadership, set.ElectionTimeout = true, 500*time.Millisecond
	settled := t0.Add(-StoreSettle(set) - time.Second)
	live := StorePeer{Active: true, CaughtUp: true}
	streaming := func(name string) Member {
		m := standbyMember(name, 0x5000000, 95)
		m.Streaming = true
		return m
	}
	obs := func(view StoreView, members ...Member) Observation {
		self := Member{Name: "self", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x5000000}
		return Observation{Now: t0, Self: "self", Settings: set, StoreOK: true,
			Cluster: cluster("self", append(members, self)...), Local: runningPrimary(0x5000000),
			Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-100 * time.Millisecond)}, Store: view}
	}
	cases := []struct {
		name   string
		obs    Observation
		target string // "" = no move
	}{
		{
			name:   "stable group, standby reachable and caught up: leadership moves to it",
			obs:    obs(StoreView{RaftLeader: true, StableSince: settled, Peers: map[string]StorePeer{"n1": live, "n2": live}}, streaming("n1"), streaming("n2")),
			target: "n1",
		},
		{
			name: "the member just killed is still published as a healthy standby but its stream is down: never chosen (issue 11)",
			obs: obs(StoreView{RaftLeader: true, StableSince: settled, Peers: map[string]StorePeer{"n1": {Active: false, CaughtUp: false}, "n2": live}},
				streaming("n1"), streaming("n2")),
			target: "n2",
		},
		{
			name: "a member whose stream is up but whose log lags the commit index is not chosen",
			obs: obs(StoreView{RaftLeader: true, StableSince: settled, Peers: map[string]StorePeer{"n1": {Active: true}, "n2": live}},
				streaming("n1"), streaming("n2")),
			target: "n2",
		},
		{
			name: "this member became raft leader just now (the election after a member's loss): leadership stays",
			obs: obs(StoreView{RaftLeader: true, StableSince: t0.Add(-time.Second), Peers: map[string]StorePeer{"n1": live, "n2": live}},
				streaming("n1"), streaming("n2")),
		},
		{
			name: "no peer is both reachable and caught up: leadership stays",
			obs: obs(StoreView{RaftLeader: true, StableSince: settled, Peers: map[string]StorePeer{"n1": {Active: true}, "n2": {CaughtUp: true}}},
				streaming("n1"), streaming("n2")),
		},
		{
			name: "the only caught-up member runs no streaming standby: leadership stays",
			obs: obs(StoreView{RaftLeader: true, StableSince: settled, Peers: map[string]StorePeer{"n1": live}},
				standbyMember("n1", 0x5000000, 95)),
		},
		{
			name: "this member does not lead raft: nothing to move",
			obs:  obs(StoreView{StableSince: settled}, streaming("n1")),
		},
		{
			name: "an election timeout plus a loop does not fit in ttl - safety_margin: never moved",
			obs: func() Observation {
				o := obs(StoreView{RaftLeader: true, StableSince: settled, Peers: map[string]StorePeer{"n1": live}}, streaming("n1"))
				o.Settings.ElectionTimeout = 2 * time.Second
				return o
			}(),
		},
		{
			name: "transfer turned off: never moved",
			obs: func() Observation {
				o := obs(StoreView{RaftLeader: true, StableSince: settled, Peers: map[string]StorePeer{"n1": live}}, streaming("n1"))
				o.Settings.TransferStoreLeadership = false
				return o
			}(),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := Decide(tc.obs)
			var got, reason string
			for _, a := range plan {
				if a.Kind == MoveStoreLead {
					got, reason = a.Target, a.Reason
				}
			}
			if got != tc.target {
				t.Fatalf("move-store-lead target %q, want %q; plan: %v", got, tc.target, plan)
			}
			if len(plan) == 0 || plan[0].Kind != RenewLeader {
				t.Fatalf("plan %v: a healthy primary renews first, so a transfer always starts right after a renewal", plan)
			}
			if got != "" && !strings.Contains(reason, got) {
				t.Fatalf("plan %v: the reason names the target", plan)
			}
		})
	}
}
