package ha

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

func syncConfig(mode Mode) ClusterConfig {
	c := DefaultClusterConfig()
	c.Mode, c.SyncTimeoutMs = mode, 10000
	return c
}

func streamingFromSelf(name string, pos lsn.LSN) Member {
	m := standbyMember(name, pos, 50)
	m.Streaming, m.Following = true, "self"
	return m
}

func TestSyncSteps(t *testing.T) {
	cases := []struct {
		name  string
		obs   Observation
		want  []Kind
		check func(t *testing.T, p Plan)
	}{
		{
			name: "sync mode: the standby is recorded in the sync key before the primary waits for it",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{"n2": streamingFromSelf("n2", 10)}},
				Local: Local{}},
			want: []Kind{SetSyncKey},
			check: func(t *testing.T, p Plan) {
				if !reflect.DeepEqual(p[0].Members, []string{"n2"}) || p[0].Quorum != 1 {
					t.Fatalf("key = %v quorum %d, want [n2] 1", p[0].Members, p[0].Quorum)
				}
			},
		},
		{
			name: "sync mode: synchronous_standby_names follows once the key covers the standby",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{"n2": streamingFromSelf("n2", 10)},
				Sync: &SyncState{Leader: "self", Members: []string{"n2"}, Quorum: 1}}},
			want: []Kind{SetSyncNames},
		},
		{
			name: "sync mode: steady state changes nothing",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{"n2": streamingFromSelf("n2", 10)},
				Sync: &SyncState{Leader: "self", Members: []string{"n2"}, Quorum: 1}},
				Local: Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n2"}}}},
			want: []Kind{},
		},
		{
			name: "sync standby lost: it keeps its place while sync_timeout lasts (commits wait)",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{},
				Sync: &SyncState{Leader: "self", Members: []string{"n2"}, Quorum: 1}},
				Local:  Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n2"}}},
				Memory: Memory{LastStreaming: map[string]time.Time{"n2": t0.Add(-5 * time.Second)}}},
			want: []Kind{},
		},
		{
			name: "sync standby lost: after sync_timeout the primary degrades to async",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{},
				Sync: &SyncState{Leader: "self", Members: []string{"n2"}, Quorum: 1}},
				Local:  Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n2"}}},
				Memory: Memory{LastStreaming: map[string]time.Time{"n2": t0.Add(-11 * time.Second)}}},
			want: []Kind{SetSyncNames},
			check: func(t *testing.T, p Plan) {
				if len(p[0].Members) != 0 {
					t.Fatalf("degrade should clear synchronous_standby_names, got %v", p[0].Members)
				}
			},
		},
		{
			name: "sync standby lost: a healthy standby replaces it (key widened first)",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{"n3": streamingFromSelf("n3", 10)},
				Sync: &SyncState{Leader: "self", Members: []string{"n2"}, Quorum: 1}},
				Local:  Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n2"}}},
				Memory: Memory{LastStreaming: map[string]time.Time{"n2": t0.Add(-11 * time.Second)}}},
			want: []Kind{SetSyncKey},
			check: func(t *testing.T, p Plan) {
				if !reflect.DeepEqual(p[0].Members, []string{"n2", "n3"}) {
					t.Fatalf("key = %v, want [n2 n3] (old kept until the new one has every commit)", p[0].Members)
				}
			},
		},
		{
			name: "strict mode: a lost sync standby is never dropped",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeStrict), Members: map[string]Member{},
				Sync: &SyncState{Leader: "self", Members: []string{"n2"}, Quorum: 1}},
				Local:  Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n2"}}},
				Memory: Memory{LastStreaming: map[string]time.Time{"n2": t0.Add(-time.Hour)}}},
			want: []Kind{},
		},
		{
			name: "just promoted: keeps waiting for any standby instead of degrading",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{},
				Sync: &SyncState{Leader: "self", Members: []string{"n1", "n3"}, Quorum: 1}},
				Local:  Local{SyncNames: SyncNames{Method: "any", Count: 1, Wildcard: true}},
				Memory: Memory{SyncChangeAt: t0.Add(-time.Second)}},
			want: []Kind{},
		},
		{
			name: "just promoted: standbys named at promotion keep their place until they connect",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{},
				Sync: &SyncState{Leader: "self", Members: []string{"n3"}, Quorum: 1}},
				Local:  Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n3"}}},
				Memory: Memory{SyncChangeAt: t0.Add(-time.Second)}},
			want: []Kind{},
		},
		{
			name: "just promoted with a stale memory of the standby from an earlier term: it keeps its place",
			obs: Observation{Cluster: Cluster{Config: syncConfig(ModeSync), Members: map[string]Member{},
				Sync: &SyncState{Leader: "self", Members: []string{"n1"}, Quorum: 1}},
				Local:  Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n1"}}},
				Memory: Memory{SyncChangeAt: t0.Add(-100 * time.Millisecond), LastStreaming: map[string]time.Time{"n1": t0.Add(-5 * time.Minute)}}},
			want: []Kind{},
		},
		{
			name: "async mode: clears synchronous_standby_names",
			obs: Observation{Cluster: Cluster{Config: DefaultClusterConfig(), Members: map[string]Member{},
				Sync: &SyncState{Leader: "self", Members: []string{"n2"}, Quorum: 1}},
				Local: Local{SyncNames: SyncNames{Method: "first", Count: 1, Members: []string{"n2"}}}},
			want: []Kind{SetSyncNames},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.obs
			o.Now, o.Self, o.Settings = t0, "self", settings()
			for name := range o.Cluster.Members {
				o.Local.Streamers = append(o.Local.Streamers, name)
			}
			p := syncSteps(o)
			if got := p.Kinds(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v, want %v\n%v", got, tc.want, p)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestFailoverInSyncModes(t *testing.T) {
	lost := lostLeader(100 * time.Millisecond)
	cases := []struct {
		name string
		self string
		cfg  ClusterConfig
		sync *SyncState
		mem  []Member
		want []Kind
	}{
		{"sync mode: an asynchronous standby ahead of the sync one is not promoted", "n3", syncConfig(ModeSync),
			&SyncState{Members: []string{"n2"}, Quorum: 1}, []Member{standbyMember("n2", 0x2FFFF00, 101)}, []Kind{Wait}},
		{"sync mode: a new primary names only the live standbys as possibly synchronous", "n2", syncConfig(ModeSync),
			&SyncState{Members: []string{"n2"}, Quorum: 1}, []Member{standbyMember("n3", 0x2000000, 101)},
			[]Kind{AcquireLeader, SetSyncKey, SetSyncNames, ReserveTimeline, Promote}},
		{"sync mode: the synchronous standby is promoted even if an async one is ahead", "n2", syncConfig(ModeSync),
			&SyncState{Members: []string{"n2"}, Quorum: 1}, []Member{standbyMember("n3", 0x4000000, 101)},
			[]Kind{AcquireLeader, SetSyncKey, SetSyncNames, ReserveTimeline, Promote}},
		{"sync mode: with a widened key, failover waits until enough members reported", "n2", syncConfig(ModeSync),
			&SyncState{Members: []string{"n2", "n3"}, Quorum: 1}, nil, []Kind{Wait}},
		{"sync mode: degraded to async (empty key): the async rule applies", "n2", syncConfig(ModeSync),
			&SyncState{Members: nil, Quorum: 0}, nil, []Kind{AcquireLeader, SetSyncKey, SetSyncNames, ReserveTimeline, Promote}},
		{"paused: nobody is promoted", "n2", func() ClusterConfig { c := DefaultClusterConfig(); c.Paused = true; return c }(),
			nil, nil, []Kind{Wait}},
		{"detached: never promoted", "n2", func() ClusterConfig { c := DefaultClusterConfig(); c.Detached = []string{"n2"}; return c }(),
			nil, nil, []Kind{Wait}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("", tc.mem...)
			c.Config, c.Sync = tc.cfg, tc.sync
			o := Observation{Now: t0, Self: tc.self, Peers: []string{"n1", "n2", "n3"}, Settings: settings(), StoreOK: true,
				Cluster: c, Local: runningStandby(0x3000000, "n1"), Memory: lost}
			if got := Decide(o).Kinds(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v, want %v\n%v", got, tc.want, Decide(o))
			}
		})
	}
}

// The history's reason for a sync-mode election says the sync key chose,
// not the position: the standby outside it may be ahead (and is rewound).
func TestASyncElectionSaysTheKeyChose(t *testing.T) {
	c := cluster("", standbyMember("n3", 0x4000000, 101))
	c.Config, c.Sync = syncConfig(ModeSync), &SyncState{Members: []string{"n2"}, Quorum: 1}
	o := Observation{Now: t0, Self: "n2", Peers: []string{"n1", "n2", "n3"}, Settings: settings(), StoreOK: true,
		Cluster: c, Local: runningStandby(0x3000000, "n1"), Memory: lostLeader(100 * time.Millisecond)}
	plan := Decide(o)
	if len(plan) == 0 || plan[0].Kind != AcquireLeader || !strings.Contains(plan[0].Reason, "synchronous ([n2])") || strings.Contains(plan[0].Reason, "most WAL") {
		t.Fatalf("plan %v: want an acquire-leader that names the sync key, not the most WAL", plan)
	}
}

func TestSyncNamesRoundTrip(t *testing.T) {
	for _, s := range []SyncNames{
		{},
		{Method: "first", Count: 1, Members: []string{"n2"}},
		{Method: "any", Count: 2, Members: []string{"n1", "n3"}},
		{Method: "any", Count: 1, Wildcard: true},
	} {
		got := ParseSyncNames(s.String())
		if got.String() != s.String() {
			t.Fatalf("round trip %q -> %q", s.String(), got.String())
		}
	}
	if got := ParseSyncNames("n2, n3"); got.Count != 1 || len(got.Members) != 2 {
		t.Fatalf("plain list parsed as %+v", got)
	}
}

func TestNewSyncPrimaryDoesNotNameDeadPeers(t *testing.T) {
	c := cluster("", standbyMember("n3", 0x2000000, 101))
	c.Config, c.Sync = syncConfig(ModeSync), &SyncState{Members: []string{"n2"}, Quorum: 1}
	o := Observation{Now: t0, Self: "n2", Peers: []string{"n1", "n2", "n3"}, Settings: settings(), StoreOK: true,
		Cluster: c, Local: runningStandby(0x3000000, "n1"), Memory: lostLeader(time.Second)}
	plan := Decide(o)
	if len(plan) < 2 || plan[1].Kind != SetSyncKey || !reflect.DeepEqual(plan[1].Members, []string{"n2", "n3"}) || plan[1].Quorum != 1 {
		t.Fatalf("new primary's sync key = %+v, want itself and the live standby n3 with a quorum of one (dead n1 would block the next failover)", plan)
	}
	if len(plan) < 3 || plan[2].Kind != SetSyncNames || !reflect.DeepEqual(plan[2].Members, []string{"n3"}) {
		t.Fatalf("new primary's synchronous_standby_names = %+v, want the live standby n3 only", plan)
	}
}

// Chaos finding 24 (double-kill, sync, seed 11718): n1 acknowledged a
// commit that n2, its synchronous standby, held and n3 did not; n2 took
// the key and wrote the interim sync key, then was lost before n3 caught
// up. With n2 in that key, n3 may not be promoted until n2 is back.
func TestAStandbyBehindTheLostNewPrimaryIsNotPromoted(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []string
		want []Kind
	}{
		{"the interim key holds the lost new primary: wait", []string{"n2", "n3"}, []Kind{Wait}},
		{"a key of n3 alone (before the fix) would promote it", []string{"n3"}, []Kind{AcquireLeader, SetSyncKey, SetSyncNames, ReserveTimeline, Promote}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("", standbyMember("n1", 0x2000000, 90)) // the old primary, back but not published since
			c.Config = syncConfig(ModeSync)
			c.Sync = &SyncState{Leader: "n2", Members: tc.key, Quorum: 1}
			o := Observation{Now: t0, Self: "n3", Peers: []string{"n1", "n2", "n3"}, Settings: settings(), StoreOK: true,
				Cluster: c, Local: runningStandby(0x3000000, "n2"), Memory: lostLeader(time.Second)}
			if got := Decide(o).Kinds(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v, want %v\n%v", got, tc.want, Decide(o))
			}
		})
	}
}

// The new primary leaves the interim key only once every standby it
// names has passed its position at the change.
func TestTheInterimKeyNarrowsOnceTheStandbysCaughtUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		pos  lsn.LSN
		want []Kind
	}{
		{"n3 behind the change: keep the key", 0x4000000, nil},
		{"n3 past the change: the key is n3 alone", 0x5000000, []Kind{SetSyncKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster("n2", standbyMember("n3", tc.pos, 101))
			n3 := c.Members["n3"]
			n3.Streaming, n3.Following = true, "n2"
			c.Members["n3"] = n3
			c.Config = syncConfig(ModeSync)
			c.Sync = &SyncState{Leader: "n2", Members: []string{"n2", "n3"}, Quorum: 1}
			l := runningPrimary(0x5000000)
			l.SyncNames = SyncNames{Method: "first", Count: 1, Members: []string{"n3"}}
			l.Streamers = []string{"n3"}
			o := Observation{Now: t0, Self: "n2", Settings: settings(), StoreOK: true, Cluster: c, Local: l,
				Memory: Memory{SyncChangeLSN: 0x4800000, SyncChangeAt: t0.Add(-time.Second)}}
			got := syncSteps(o)
			if !reflect.DeepEqual(got.Kinds(), tc.want) && !(len(tc.want) == 0 && len(got) == 0) {
				t.Fatalf("steps = %v, want %v", got, tc.want)
			}
			if len(got) == 1 && !reflect.DeepEqual(got[0].Members, []string{"n3"}) {
				t.Fatalf("narrowed key = %v, want [n3]", got[0].Members)
			}
		})
	}
}
