package ha

import (
	"testing"
	"time"
)

func TestRememberCountsFailedStandbyStartsAndResetsThem(t *testing.T) {
	t0 := time.Unix(1000, 0)
	start := Action{Kind: StartStandby, Target: "n1"}
	m := Remember(Memory{}, Outcome{Action: start, At: t0, OK: false, Running: false})
	m = Remember(m, Outcome{Action: start, At: t0, OK: false, Running: false})
	if m.StartFailures != 2 || m.Following != "n1" || !m.FollowingSince.Equal(t0) {
		t.Fatalf("after two failed starts: %+v", m)
	}
	// A start that failed while the postmaster runs (a slow start) is not
	// a failed start of a diverged standby.
	if m2 := Remember(m, Outcome{Action: start, At: t0, Running: true}); m2.StartFailures != 2 {
		t.Fatalf("a failure with the postmaster up counted: %d", m2.StartFailures)
	}
	if m2 := Remember(m, Outcome{Action: start, At: t0, OK: true, Running: true}); m2.StartFailures != 0 {
		t.Fatalf("a successful start must reset the count: %d", m2.StartFailures)
	}
	// A start that never got to run (no address for the upstream) changes
	// nothing.
	if m2 := Remember(m, Outcome{Action: Action{Kind: StartStandby, Target: "n9"}, Skipped: true}); m2.Following != "n1" || m2.StartFailures != 2 {
		t.Fatalf("a skipped start changed the memory: %+v", m2)
	}
}

func TestRememberRewindFailureOnlyWhenTheSourceWasReached(t *testing.T) {
	t0 := time.Unix(2000, 0)
	rw := Action{Kind: Rewind, Target: "n1"}
	cases := []struct {
		name       string
		out        Outcome
		failedFor  string
		lastRewind time.Time
	}{
		{"a rewind that ran and failed marks the leader", Outcome{Action: rw, At: t0}, "n1", t0},
		{"an unreachable source is retried, not rebuilt", Outcome{Action: rw, At: t0, Unreachable: true}, "", t0},
		{"a rewind that succeeded clears the mark even if a later part failed", Outcome{Action: rw, At: t0, Rewound: true}, "", t0},
		{"a rewind with no address to reach leaves no trace", Outcome{Action: rw, At: t0, Skipped: true}, "", time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Remember(Memory{StartFailures: 3}, c.out)
			from := "n1"
			if c.lastRewind.IsZero() {
				from = ""
			}
			if m.RewindFailedFor != c.failedFor || !m.LastRewind.Equal(c.lastRewind) || m.LastRewindFrom != from {
				t.Fatalf("memory %+v", m)
			}
		})
	}
	m := Remember(Memory{RewindFailedFor: "n1"}, Outcome{Action: Action{Kind: Reinit, Target: "n1"}})
	if m.RewindFailedFor != "" {
		t.Fatal("a rebuild moves the data directory aside: its rewind failure must go")
	}
}

func TestRememberLease(t *testing.T) {
	t0, t1 := time.Unix(3000, 0), time.Unix(3001, 0)
	m := Remember(Memory{}, Outcome{Action: Action{Kind: AcquireLeader}, OK: true, Sent: t0})
	if !m.HoldsLeader || !m.LastRenew.Equal(t0) {
		t.Fatalf("after acquire: %+v", m)
	}
	m = Remember(m, Outcome{Action: Action{Kind: RenewLeader}, OK: true, Sent: t1, Optime: 0x300, At: t1})
	if !m.LastRenew.Equal(t1) || m.Optime != 0x300 || !m.OptimeAt.Equal(t1) {
		t.Fatalf("after renew: %+v", m)
	}
	if m2 := Remember(m, Outcome{Action: Action{Kind: RenewLeader}}); !m2.HoldsLeader || !m2.LastRenew.Equal(t1) {
		t.Fatalf("a renewal that failed for another reason keeps the fencing deadline where it was: %+v", m2)
	}
	if m2 := Remember(m, Outcome{Action: Action{Kind: RenewLeader}, NotLeader: true}); m2.HoldsLeader {
		t.Fatal("a renewal refused because someone else holds the key must drop it")
	}
	for _, k := range []Kind{ReleaseLeader, Fence} {
		if m2 := Remember(m, Outcome{Action: Action{Kind: k}}); m2.HoldsLeader {
			t.Fatalf("%s (even failed) must drop the lease from memory", k)
		}
	}
}

func TestObservedTracksLeaderLossOnce(t *testing.T) {
	t0 := time.Unix(4000, 0)
	withLeader := Cluster{Leader: &Leader{Name: "n1"}, Revision: 7}
	m := Observed(Memory{HoldsLeader: true}, "n2", t0, Local{Running: true, InRecovery: true}, withLeader, true)
	if m.SawLeader != "n1" || m.HoldsLeader {
		t.Fatalf("a follower seeing n1 lead: %+v", m)
	}
	lost := Observed(m, "n2", t0.Add(time.Second), Local{Running: true, InRecovery: true}, Cluster{Revision: 9}, true)
	if LeaderLost(m, lost) != "n1" || !lost.LeaderLostAt.Equal(t0.Add(time.Second)) || lost.LeaderLostRev != 9 {
		t.Fatalf("leader loss not noticed: %+v", lost)
	}
	again := Observed(lost, "n2", t0.Add(2*time.Second), Local{Running: true}, Cluster{Revision: 10}, true)
	if LeaderLost(lost, again) != "" || !again.LeaderLostAt.Equal(lost.LeaderLostAt) {
		t.Fatalf("a loss is reported once and dated when first seen: %+v", again)
	}
	if down := Observed(again, "n2", t0, Local{}, Cluster{}, false); down.DownSince.IsZero() {
		t.Fatal("a stopped postmaster must be dated even without the store")
	}
}

func TestObservedAndRememberDoNotShareMaps(t *testing.T) {
	m := Memory{LastStreaming: map[string]time.Time{"n2": time.Unix(1, 0)}}
	_ = Observed(m, "n1", time.Unix(5, 0), Local{Running: true, Streamers: []string{"n3"}}, Cluster{Leader: &Leader{Name: "n1"}}, true)
	_ = Remember(m, Outcome{Action: Action{Kind: StartPrimary}})
	if len(m.LastStreaming) != 1 {
		t.Fatalf("the caller's memory was changed: %v", m.LastStreaming)
	}
}

func TestHandOverPlanReleasesToACaughtUpCandidateOrRestartsThePrimary(t *testing.T) {
	o := Observation{Self: "n1", Now: time.Unix(6000, 0), StoreOK: true,
		Cluster: Cluster{SystemID: "s", Leader: &Leader{Name: "n1"}, Switchover: &Switchover{From: "n1", To: "n2"},
			Members: map[string]Member{"n1": {Name: "n1"}, "n2": {Name: "n2"}}},
		Local:  Local{Data: DataValid, ControlState: "shut down"},
		Memory: Memory{HoldsLeader: true, LastRenew: time.Unix(6000, 0)},
	}
	o.Memory.HandOver = &HandOverState{To: "n2", Checkpoint: 0x500, Received: 0x600, CaughtUp: true}
	if p := Decide(o); len(p) != 1 || p[0].Kind != ReleaseLeader {
		t.Fatalf("caught up: plan %v, want the key released", p)
	}
	// The postmaster still finishing its clean stop past the shutdown
	// checkpoint (archiving the last segment): the key goes at once.
	o.Local.Running, o.Local.ShutDown = true, true
	if p := Decide(o); len(p) != 1 || p[0].Kind != ReleaseLeader || p[0].Target != "n2" {
		t.Fatalf("caught up, postmaster finishing its shutdown: plan %v, want the key released to n2", p)
	}
	// Not caught up, or no hand-over under way: nothing is started
	// beside a postmaster still shutting down; the loop waits for it.
	for _, h := range []*HandOverState{{To: "n2", Checkpoint: 0x500, Received: 0x400}, nil} {
		o.Memory.HandOver = h
		if p := Decide(o); len(p) != 1 || p[0].Kind != Wait {
			t.Fatalf("hand-over %+v, postmaster finishing its shutdown: plan %v, want a wait", h, p)
		}
	}
	o.Local.Running, o.Local.ShutDown = false, false
	o.Memory.HandOver = &HandOverState{To: "n2", Checkpoint: 0x500, Received: 0x400}
	p := Decide(o)
	if len(p) != 2 || p[0].Kind != ClearSwitchover || p[1].Kind != StartPrimary {
		t.Fatalf("not caught up: plan %v, want the switchover withdrawn and the primary started", p)
	}
	if m := Remember(o.Memory, Outcome{Action: p[1], OK: true, Running: true}); m.HandOver != nil {
		t.Fatal("the primary's start ends the hand-over")
	}
	// Running again (the agent restarted PostgreSQL some other way): the
	// hand-over outcome no longer applies.
	o.Local.Running, o.Local.Healthy = true, true
	for _, a := range Decide(o) {
		if a.Kind == ReleaseLeader {
			t.Fatalf("a running primary released its key on an old hand-over outcome: %v", Decide(o))
		}
	}
}
