package ha

import (
	"strings"
	"testing"
	"time"
)

func kinds(p Plan) []Kind {
	out := make([]Kind, len(p))
	for i, a := range p {
		out[i] = a.Kind
	}
	return out
}

func hasKind(p Plan, k Kind) bool {
	for _, a := range p {
		if a.Kind == k {
			return true
		}
	}
	return false
}

// A node paused alone takes no step that changes it, while the rest of
// the cluster fails over as if it were not there.
func TestNodePause(t *testing.T) {
	paused := func(c Cluster, nodes ...string) Cluster {
		c.Config = DefaultClusterConfig()
		c.Config.PausedNodes = nodes
		return c
	}
	leaderless := func(self string, local Local, nodes ...string) Observation {
		c := paused(cluster("", standbyMember("n2", 0x3000100, 150), standbyMember("n3", 0x3000000, 150)), nodes...)
		return Observation{Now: t0, Self: self, Peers: []string{"n1", "n2", "n3"}, Settings: settings(), StoreOK: true, Cluster: c, Local: local,
			Memory: Memory{LeaderLostAt: t0.Add(-5 * time.Second), LeaderLostRev: 120}}
	}

	// The most advanced standby is paused: it does not campaign, and the
	// next one does not wait for it.
	p := Decide(leaderless("n2", runningStandby(0x3000100, ""), "n2"))
	if hasKind(p, AcquireLeader) || hasKind(p, Promote) || !strings.Contains(p[len(p)-1].Reason, "paused") {
		t.Fatalf("paused n2 with no leader: %v (%q), want a wait naming the pause", kinds(p), p[len(p)-1].Reason)
	}
	if p := Decide(leaderless("n3", runningStandby(0x3000000, ""), "n2")); !hasKind(p, AcquireLeader) {
		t.Fatalf("n3 waits for the paused n2 instead of taking over: %v (%v)", kinds(p), p)
	}

	primary := func(local Local) Observation {
		c := paused(cluster("n1", Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x3000000, Revision: 90},
			standbyMember("n2", 0x3000000, 95)), "n1")
		return Observation{Now: t0, Self: "n1", Peers: []string{"n1", "n2"}, Settings: settings(), StoreOK: true, Cluster: c, Local: local,
			Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-500 * time.Millisecond), PrimarySince: t0.Add(-time.Hour)}}
	}
	// A paused primary that runs keeps its role.
	if p := Decide(primary(runningPrimary(0x3000000))); !hasKind(p, RenewLeader) || !hasKind(p, EnsureSlots) {
		t.Fatalf("paused running primary: %v, want it to renew its lease and keep its slots", kinds(p))
	}
	// Its postmaster gone, it neither restarts it nor keeps the lease: the
	// others fail over.
	down := runningPrimary(0x3000000)
	down.Running, down.Healthy = false, false
	if p := Decide(primary(down)); hasKind(p, RenewLeader) || hasKind(p, StartPrimary) || hasKind(p, CrashRecover) {
		t.Fatalf("paused primary with PostgreSQL down: %v, want neither a restart nor a renewal", kinds(p))
	}
	// Safety first: a paused node running as a primary under another
	// leader still fences.
	c := paused(cluster("n2", Member{Name: "n2", Role: RolePrimary, Healthy: true, Timeline: 2, WalLSN: 0x4000000, Revision: 90}), "n1")
	o := Observation{Now: t0, Self: "n1", Peers: []string{"n1", "n2"}, Settings: settings(), StoreOK: true, Cluster: c, Local: runningPrimary(0x3000000)}
	if p := Decide(o); !hasKind(p, Fence) {
		t.Fatalf("paused node running as a second primary: %v, want a fence", kinds(p))
	}
	// A paused standby is no switchover candidate.
	sc := paused(cluster("n1", Member{Name: "n1", Role: RolePrimary, Healthy: true, WalLSN: 0x3000000},
		Member{Name: "n2", Role: RoleStandby, Healthy: true, Streaming: true, Following: "n1", ReceivedLSN: 0x3000000}), "n2")
	if failed := Failed(SwitchoverChecks(sc, "n1", "n2")); len(failed) != 1 || failed[0].Name != "candidate not paused" {
		t.Fatalf("switchover to a paused standby: failed checks %+v, want only 'candidate not paused'", failed)
	}
}

// A node that reaches none of its trusted addresses does not campaign,
// and the others do not wait for it (HA-10).
func TestIsolatedNodeDoesNotCampaign(t *testing.T) {
	obs := func(self string, isolated string) Observation {
		c := cluster("", standbyMember("n2", 0x3000100, 150), standbyMember("n3", 0x3000000, 150))
		c.Config = DefaultClusterConfig()
		local := runningStandby(0x3000100, "")
		if self == "n3" {
			local = runningStandby(0x3000000, "")
		}
		local.Isolated = isolated
		return Observation{Now: t0, Self: self, Peers: []string{"n1", "n2", "n3"}, Settings: settings(), StoreOK: true, Cluster: c, Local: local,
			Memory: Memory{LeaderLostAt: t0.Add(-5 * time.Second), LeaderLostRev: 120}}
	}
	p := Decide(obs("n2", "cannot reach any of ha.trusted_addresses (10.0.0.1:53: refused)"))
	if hasKind(p, AcquireLeader) || !strings.Contains(p[0].Reason, "isolated") {
		t.Fatalf("isolated n2 with no leader: %v (%q), want a wait naming the isolation", kinds(p), p[0].Reason)
	}
	if p := Decide(obs("n2", "")); !hasKind(p, AcquireLeader) {
		t.Fatalf("connected n2, the most advanced, does not campaign: %v", kinds(p))
	}
	o := obs("n3", "")
	n2 := o.Cluster.Members["n2"]
	n2.Isolated = true
	o.Cluster.Members["n2"] = n2
	if p := Decide(o); !hasKind(p, AcquireLeader) {
		t.Fatalf("n3 waits for the isolated n2 instead of taking over: %v (%v)", kinds(p), p)
	}
}

// The operator's replay requests on a running standby, and the delayed
// standby never campaigning (HA-13).
func TestReplayRequests(t *testing.T) {
	until := t0.Add(-time.Minute)
	obs := func(req *ReplayRequest, local Local) Observation {
		c := cluster("n1", Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x3000000, Revision: 90})
		if req != nil {
			c.Replay = map[string]ReplayRequest{"n3": *req}
		}
		return Observation{Now: t0, Self: "n3", Peers: []string{"n1", "n3"}, Settings: settings(), StoreOK: true, Cluster: c, Local: local}
	}
	standby := runningStandby(0x3000000, "n1")
	held := standby
	held.ReplayTarget, held.ReplayPaused = until, true
	pausedByHand := standby
	pausedByHand.ReplayPaused = true
	cases := []struct {
		name string
		req  *ReplayRequest
		l    Local
		want Kind
	}{
		{"--until: restart with the target", &ReplayRequest{Until: until}, standby, SetReplayTarget},
		{"held at the target: nothing more", &ReplayRequest{Until: until}, held, ""},
		{"--cancel while held: restart without the target", nil, held, SetReplayTarget},
		{"--pause", &ReplayRequest{Pause: true}, standby, PauseReplay},
		{"--resume", &ReplayRequest{}, pausedByHand, ResumeReplay},
		{"--cancel while paused: resume", nil, pausedByHand, ResumeReplay},
	}
	for _, tc := range cases {
		p := Decide(obs(tc.req, tc.l))
		got := Kind("")
		for _, a := range p {
			if a.Kind == SetReplayTarget || a.Kind == PauseReplay || a.Kind == ResumeReplay {
				got = a.Kind
				if a.Kind == SetReplayTarget && tc.req != nil && !a.Until.Equal(tc.req.Until) {
					t.Errorf("%s: target %s, want %s", tc.name, a.Until, tc.req.Until)
				}
			}
		}
		if got != tc.want {
			t.Errorf("%s: plan %v, want %q", tc.name, kinds(p), tc.want)
		}
	}
	// A delayed standby does not campaign; the others do not wait for it.
	c := cluster("", Member{Name: "n2", Role: RoleStandby, Healthy: true, Timeline: 1, ReceivedLSN: 0x3000000, ReplayedLSN: 0x3000000, Revision: 150, Delayed: true},
		standbyMember("n3", 0x3000000, 150))
	set := settings()
	set.ApplyDelay = time.Hour
	self := Observation{Now: t0, Self: "n2", Peers: []string{"n1", "n2", "n3"}, Settings: set, StoreOK: true, Cluster: c,
		Local: runningStandby(0x3000000, ""), Memory: Memory{LeaderLostAt: t0.Add(-5 * time.Second), LeaderLostRev: 120}}
	if p := Decide(self); hasKind(p, AcquireLeader) {
		t.Fatalf("the delayed n2 campaigns: %v", kinds(p))
	}
	other := self
	other.Self, other.Settings = "n3", settings()
	if p := Decide(other); !hasKind(p, AcquireLeader) {
		t.Fatalf("n3 waits for the delayed n2 (better by name) instead of taking over: %v", kinds(p))
	}
}

// Disk critical (HA-14): a standby stops cleanly and stays down; a
// primary gives up the slot of the non-streaming member holding the most
// WAL back.
func TestDiskCritical(t *testing.T) {
	standby := runningStandby(0x3000000, "n1")
	standby.Disk = DiskCritical
	c := cluster("n1", Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x5000000, Revision: 90})
	o := Observation{Now: t0, Self: "n3", Peers: []string{"n1", "n3"}, Settings: settings(), StoreOK: true, Cluster: c, Local: standby}
	if p := Decide(o); len(p) != 1 || p[0].Kind != Stop {
		t.Fatalf("critical running standby: %v, want a clean stop", kinds(p))
	}
	stopped := standby
	stopped.Running = false
	o.Local = stopped
	if p := Decide(o); hasKind(p, StartStandby) {
		t.Fatalf("critical stopped standby restarts: %v", kinds(p))
	}

	primary := runningPrimary(0x5000000)
	primary.Disk, primary.Streamers = DiskCritical, []string{"n2"}
	pc := cluster("n1", Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x5000000, Revision: 90},
		standbyMember("n2", 0x5000000, 95), standbyMember("n3", 0x3000000, 95), standbyMember("n4", 0x4000000, 95))
	po := Observation{Now: t0, Self: "n1", Peers: []string{"n1", "n2", "n3", "n4"}, Settings: settings(), StoreOK: true, Cluster: pc, Local: primary,
		Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-100 * time.Millisecond), PrimarySince: t0.Add(-time.Hour)}}
	var slots Action
	for _, a := range Decide(po) {
		if a.Kind == EnsureSlots {
			slots = a
		}
	}
	if strings.Join(slots.Members, ",") != "n2,n4" || !strings.Contains(slots.Reason, "n3") {
		t.Fatalf("critical primary keeps slots %v (%q); want n2 (streams) and n4, n3's given up", slots.Members, slots.Reason)
	}
	po.Local.Disk = DiskWarn
	for _, a := range Decide(po) {
		if a.Kind == EnsureSlots && len(a.Members) != 3 {
			t.Fatalf("a warning alone drops slots: %v", a.Members)
		}
	}
}
