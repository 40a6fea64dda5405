package ha

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// finding is one of the chaos suite's findings (chaos/FINDINGS.md) that a
// decision could cause or cure: the observation a node had, and what must
// (or must not) come of it. Findings 4, 5, 6 and 8 are not decisions (an
// etcd transport bug, two documented trade-offs, the postmaster's death
// signal) and have no entry.
type finding struct {
	n     int
	name  string
	obs   Observation
	check func(t *testing.T, p Plan)
}

func kindsAre(want ...Kind) func(*testing.T, Plan) {
	return func(t *testing.T, p Plan) {
		t.Helper()
		if got := p.Kinds(); !slices.Equal(got, want) {
			t.Fatalf("plan %v, want %v\n%v", got, want, p)
		}
	}
}

func chaosFindings() []finding {
	primaryN1 := Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 2, WalLSN: 0x5000000,
		History: []TimelineSwitch{{TLI: 1, Switch: 0x3000000}}, Revision: 90}
	syncCfg := DefaultClusterConfig()
	syncCfg.Mode, syncCfg.SyncTimeoutMs = ModeSync, 10000
	withSettings := func(o Observation) Observation {
		o.Now, o.Settings = t0, settings()
		if o.Self == "" {
			o.Self = "self"
		}
		return o
	}
	// Finding 3: the memory after a rewind against n1 that could not
	// connect, and after one that ran and failed.
	unreachable := Remember(Memory{}, Outcome{Action: Action{Kind: Rewind, Target: "n1"}, At: t0.Add(-time.Minute), Unreachable: true})
	ranAndFailed := Remember(Memory{}, Outcome{Action: Action{Kind: Rewind, Target: "n1"}, At: t0.Add(-time.Minute)})
	formerPrimary := Local{Data: DataValid, SystemID: "42", ControlState: ControlInProduction, ControlTLI: 1}
	leaderUp := cluster("n1", primaryN1)
	return []finding{
		{1, "sync: the new primary's interim set names only the standbys alive now, not a dead one",
			withSettings(Observation{StoreOK: true, Cluster: func() Cluster {
				c := cluster("", standbyMember("n3", 0x2FFF000, 101))
				c.Config = syncCfg
				c.Sync = &SyncState{Leader: "n2", Members: []string{"self", "n3"}, Quorum: 1}
				return c
			}(), Peers: []string{"self", "n2", "n3"}, Local: runningStandby(0x3000000, "n2"),
				Memory: lostLeader(100 * time.Millisecond)}),
			func(t *testing.T, p Plan) {
				i := slices.IndexFunc(p, func(a Action) bool { return a.Kind == SetSyncKey })
				if i < 0 || !slices.Equal(p[i].Members, []string{"n3", "self"}) {
					t.Fatalf("plan %v: the interim synchronous set must be [n3 self], the new primary and the one standby alive (finding 24)", p)
				}
			}},
		{2, "a leader whose data was last a standby keeps its key while it restarts in recovery",
			withSettings(Observation{StoreOK: true, Cluster: cluster("self"),
				Local:  Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDownRecov, ControlTLI: 1},
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-500 * time.Millisecond), DownSince: t0.Add(-time.Second)}}),
			kindsAre(AcquireLeader, StartStandby)},
		{2, "a standby that fails to start three times against a healthy leader is rewound, not restarted again",
			withSettings(Observation{StoreOK: true, Cluster: leaderUp,
				Local: Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDownRecov, ControlTLI: 1},
				Memory: Remember(Remember(Remember(Memory{}, Outcome{Action: Action{Kind: StartStandby, Target: "n1"}, At: t0}),
					Outcome{Action: Action{Kind: StartStandby, Target: "n1"}, At: t0}), Outcome{Action: Action{Kind: StartStandby, Target: "n1"}, At: t0})}),
			kindsAre(Rewind, StartStandby)},
		{3, "an unreachable rewind source is retried with a rewind, not answered with a rebuild",
			withSettings(Observation{StoreOK: true, Cluster: leaderUp, Local: formerPrimary,
				Memory: Observed(unreachable, "self", t0, formerPrimary, leaderUp, true)}),
			func(t *testing.T, p Plan) {
				if k := p.Kinds(); slices.Contains(k, Reinit) || !slices.Contains(k, Rewind) {
					t.Fatalf("plan %v: want a rewind again, no rebuild", p)
				}
			}},
		{3, "a rewind that ran and failed against a reachable source leads to a rebuild",
			withSettings(Observation{StoreOK: true, Cluster: leaderUp, Local: formerPrimary,
				Memory: Observed(ranAndFailed, "self", t0, formerPrimary, leaderUp, true)}),
			func(t *testing.T, p Plan) {
				if !slices.Contains(p.Kinds(), Reinit) {
					t.Fatalf("plan %v: want a rebuild", p)
				}
			}},
		{7, "a promotion reserves a timeline no other promotion used before it promotes",
			withSettings(standbyAfterLoss(100*time.Millisecond, standbyMember("n3", 0x2FFF000, 101))),
			kindsAre(AcquireLeader, ReserveTimeline, Promote)},
		{9, "sync: a primary just promoted with a stale memory of its standby from an earlier term does not degrade",
			withSettings(Observation{StoreOK: true, Cluster: func() Cluster {
				c := cluster("self")
				c.Config = syncCfg
				c.Sync = &SyncState{Leader: "self", Members: []string{"n1"}, Quorum: 1}
				return c
			}(), Local: func() Local {
				l := runningPrimary(0x3000000)
				l.SyncNames = SyncNames{Method: "first", Count: 1, Members: []string{"n1"}}
				return l
			}(), Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-500 * time.Millisecond), PrimarySince: t0.Add(-time.Second),
				SyncChangeAt: t0.Add(-100 * time.Millisecond), LastStreaming: map[string]time.Time{"n1": t0.Add(-5 * time.Minute)}}}),
			func(t *testing.T, p Plan) {
				for _, a := range p {
					if a.Kind == SetSyncNames && len(a.Members) == 0 {
						t.Fatalf("plan %v: degraded to async 100ms after naming its standby", p)
					}
				}
			}},
		{10, "a standby that looks streaming but replays a timeline off the leader's history is rewound",
			withSettings(Observation{StoreOK: true, Cluster: leaderUp, Local: func() Local {
				l := runningStandby(0x3000200, "n1")
				l.Timeline, l.ReplayTimeline = 2, 3
				return l
			}()}),
			kindsAre(Stop, Rewind, StartStandby)},
		{11, "a standby whose recovery targets a dead primary's timeline is restarted to follow the leader's",
			withSettings(Observation{StoreOK: true, Cluster: leaderUp, Local: func() Local {
				l := runningStandby(0x3000000, "n1")
				l.Streaming, l.Timeline, l.ReplayTimeline, l.HistoryTimelines = false, 1, 1, []int{2, 3}
				return l
			}()}),
			kindsAre(Stop, Rewind, StartStandby)},
	}
}

// TestChaosFindings replays each finding's situation through Decide: the
// fix must hold and the plan must be safe. FuzzDecide starts from the same
// observations.
func TestChaosFindings(t *testing.T) {
	for _, f := range chaosFindings() {
		t.Run(f.name, func(t *testing.T) {
			p := Decide(f.obs)
			if why := planSafety(f.obs, p); why != "" {
				t.Fatalf("finding %d: unsafe plan: %s\n%v", f.n, why, p)
			}
			f.check(t, p)
		})
	}
}

// findingSeeds are the findings' observations in the JSON form FuzzDecide
// also reads.
func findingSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, f := range chaosFindings() {
		data, err := json.Marshal(f.obs)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}
