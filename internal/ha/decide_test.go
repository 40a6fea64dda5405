package ha

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func settings() Settings {
	return Settings{
		TTL: 4 * time.Second, SafetyMargin: 1500 * time.Millisecond, LoopInterval: time.Second,
		MaxLagOnFailover: 1 << 20, PrimaryStartTimeout: 30 * time.Second, ReinitOnRewindFailure: true,
	}
}

func runningStandby(pos lsn.LSN, following string) Local {
	return Local{Data: DataValid, SystemID: "42", Running: true, Healthy: true, InRecovery: true,
		Timeline: 1, ReceivedLSN: pos, ReplayedLSN: pos, Streaming: following != "", Following: following,
		FollowingSince: t0.Add(-time.Minute), ControlState: ControlInArchiveRecov, ControlTLI: 1}
}

func runningPrimary(pos lsn.LSN) Local {
	return Local{Data: DataValid, SystemID: "42", Running: true, Healthy: true, Timeline: 1, WalLSN: pos,
		ControlState: ControlInProduction, ControlTLI: 1}
}

func standbyMember(name string, pos lsn.LSN, rev int64) Member {
	return Member{Name: name, Role: RoleStandby, Healthy: true, Timeline: 1, ReceivedLSN: pos, ReplayedLSN: pos, Revision: rev}
}

// lostLeader is the memory of a standby that saw the leader key go (at
// revision 100) ago before t0.
func lostLeader(ago time.Duration) Memory {
	return Memory{LeaderLostAt: t0.Add(-ago), LeaderLostRev: 100}
}

// standbyAfterLoss is a standby at 0x3000000 that followed n1 and saw its
// leader key go ago before t0, in a cluster of members and itself.
func standbyAfterLoss(ago time.Duration, members ...Member) Observation {
	return Observation{StoreOK: true, Cluster: cluster("", members...), Local: runningStandby(0x3000000, "n1"), Memory: lostLeader(ago)}
}

// inSyncMode puts o's cluster in sync mode, its sync key naming this node.
func inSyncMode(o Observation) Observation {
	o.Cluster.Config = syncConfig(ModeSync)
	o.Cluster.Sync = &SyncState{Members: []string{"self"}, Quorum: 1}
	return o
}

func cluster(leader string, members ...Member) Cluster {
	c := Cluster{SystemID: "42", Members: map[string]Member{}, Optime: 0x3000000, Revision: 100}
	if leader != "" {
		c.Leader = &Leader{Name: leader, Revision: 10}
	}
	for _, m := range members {
		c.Members[m.Name] = m
	}
	return c
}

func TestDecide(t *testing.T) {
	primaryN1 := Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 2, WalLSN: 0x5000000,
		History: []TimelineSwitch{{TLI: 1, Switch: 0x3000000}}, Revision: 90}
	// standbyUnderN1 is a standby at pos streaming from the leader n1, its
	// local state then changed by edit.
	standbyUnderN1 := func(pos lsn.LSN, edit func(*Local)) Observation {
		l := runningStandby(pos, "n1")
		edit(&l)
		return Observation{StoreOK: true, Cluster: cluster("n1", primaryN1), Local: l}
	}
	cases := []struct {
		name string
		obs  Observation
		want []Kind
	}{
		{
			name: "bootstrap race: first agent claims, initdbs and takes the leader key",
			obs:  Observation{StoreOK: true, Cluster: Cluster{}, Local: Local{Data: DataEmpty}},
			want: []Kind{ClaimInit, Initdb, AcquireLeader, StartPrimary, FinishInit},
		},
		{
			name: "bootstrap race: the loser waits for the winner instead of running initdb",
			obs:  Observation{StoreOK: true, Cluster: Cluster{InitClaim: "n2"}, Local: Local{Data: DataEmpty}},
			want: []Kind{Wait},
		},
		{
			// Found by FuzzDecide: a bootstrap claim gone while the
			// claimant's leader key is not.
			name: "bootstrap: another node holding the leader key is waited for, not raced",
			obs:  Observation{StoreOK: true, Cluster: Cluster{Leader: &Leader{Name: "n2"}}, Local: Local{Data: DataEmpty}},
			want: []Kind{Wait},
		},
		{
			name: "bootstrapped cluster: empty standby clones the running leader",
			obs:  Observation{StoreOK: true, Cluster: cluster("n2", Member{Name: "n2", Role: RolePrimary, Healthy: true}), Local: Local{Data: DataEmpty}},
			want: []Kind{CloneFrom, StartStandby},
		},
		{
			name: "healthy primary renews its lease and keeps slots",
			obs: Observation{StoreOK: true, Cluster: cluster("self"), Local: runningPrimary(0x3000000),
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-time.Second)}},
			want: []Kind{RenewLeader, EnsureSlots},
		},
		{
			name: "primary host lost: the best standby takes the key and promotes",
			obs:  standbyAfterLoss(100*time.Millisecond, standbyMember("n3", 0x2FFF000, 101)),
			want: []Kind{AcquireLeader, ReserveTimeline, Promote},
		},
		{
			name: "primary host lost: standby waits until the other standby has published after the loss",
			obs:  standbyAfterLoss(100*time.Millisecond, standbyMember("n3", 0x2FFF000, 99)),
			want: []Kind{Wait},
		},
		{
			name: "primary host lost: a standby that never publishes again is presumed gone after two loops",
			obs:  standbyAfterLoss(3*time.Second, standbyMember("n3", 0x4000000, 99)),
			want: []Kind{AcquireLeader, ReserveTimeline, Promote},
		},
		{
			name: "two candidates with different LSNs: the one behind waits",
			obs:  standbyAfterLoss(100*time.Millisecond, standbyMember("n3", 0x3000100, 101)),
			want: []Kind{Wait},
		},
		{
			name: "two candidates with equal LSNs: the lower name wins, the other waits",
			obs: Observation{Self: "n3", StoreOK: true, Cluster: cluster("", standbyMember("n2", 0x3000000, 101)),
				Local:  runningStandby(0x3000000, "n1"),
				Memory: lostLeader(100 * time.Millisecond)},
			want: []Kind{Wait},
		},
		{
			name: "candidate over maximum lag is not promoted",
			obs: Observation{StoreOK: true, Cluster: cluster(""), Local: runningStandby(0x1000000, "n1"),
				Memory: lostLeader(5 * time.Second)},
			want: []Kind{Wait},
		},
		{
			name: "a better standby over the lag limit does not stop a good candidate",
			obs: Observation{StoreOK: true, Cluster: func() Cluster {
				c := cluster("", Member{Name: "n3", Role: RoleStandby, Healthy: true, Revision: 101, ReceivedLSN: 0x3000000, NoFailover: true})
				return c
			}(), Local: runningStandby(0x2FFFF00, "n1"),
				Memory: lostLeader(100 * time.Millisecond)},
			want: []Kind{AcquireLeader, ReserveTimeline, Promote},
		},
		{
			name: "no candidate at all: a no_failover standby never promotes",
			obs: func() Observation {
				o := standbyAfterLoss(10 * time.Second)
				o.Settings.NoFailover = true
				return o
			}(),
			want: []Kind{Wait},
		},
		{
			name: "no candidate at all: an unhealthy standby does not race",
			obs: func() Observation {
				l := runningStandby(0x3000000, "n1")
				l.Healthy = false
				return Observation{StoreOK: true, Cluster: cluster(""), Local: l}
			}(),
			want: []Kind{Wait},
		},
		{
			name: "primary postmaster crashed: restarted in place while holding the key",
			obs: Observation{StoreOK: true, Cluster: cluster("self"),
				Local:  Local{Data: DataValid, SystemID: "42", ControlState: ControlInProduction, ControlTLI: 1},
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-500 * time.Millisecond), DownSince: t0.Add(-time.Second)}},
			want: []Kind{AcquireLeader, StartPrimary},
		},
		{
			name: "leader whose data was last a standby restarts in recovery, never as a primary on the old timeline",
			obs: Observation{StoreOK: true, Cluster: cluster("self"),
				Local:  Local{Data: DataValid, SystemID: "42", ControlState: ControlInArchiveRecov, ControlTLI: 1},
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-500 * time.Millisecond), DownSince: t0.Add(-time.Second)}},
			want: []Kind{AcquireLeader, StartStandby},
		},
		{
			name: "primary postmaster does not come back within primary_start_timeout: key released",
			obs: Observation{StoreOK: true, Cluster: cluster("self"),
				Local:  Local{Data: DataValid, SystemID: "42", ControlState: ControlInProduction, ControlTLI: 1},
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-500 * time.Millisecond), DownSince: t0.Add(-31 * time.Second)}},
			want: []Kind{ReleaseLeader},
		},
		{
			name: "primary cannot reach etcd: keeps writing while the lease is surely valid",
			obs: Observation{StoreOK: false, Cluster: cluster("self"), Local: runningPrimary(0x3000000),
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-2 * time.Second)}},
			want: []Kind{Wait},
		},
		{
			name: "primary cannot reach etcd: fences at ttl - safety_margin",
			obs: Observation{StoreOK: false, Cluster: cluster("self"), Local: runningPrimary(0x3000000),
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-2500 * time.Millisecond)}},
			want: []Kind{Fence},
		},
		{
			name: "primary that finds another leader fences itself at once",
			obs:  Observation{StoreOK: true, Cluster: cluster("n2", primaryN1), Local: runningPrimary(0x3000000)},
			want: []Kind{Fence},
		},
		{
			name: "standby lost: the primary carries on",
			obs: Observation{StoreOK: true, Cluster: cluster("self", standbyMember("n2", 0x3000000, 99)), Local: runningPrimary(0x3000000),
				Memory: Memory{HoldsLeader: true, LastRenew: t0.Add(-time.Second)}},
			want: []Kind{RenewLeader, EnsureSlots},
		},
		{
			name: "standby follows a new leader",
			obs:  Observation{StoreOK: true, Cluster: cluster("n1", primaryN1), Local: runningStandby(0x3000000, "n0")},
			want: []Kind{Follow},
		},
		{
			name: "old primary returns with a diverged timeline: rewind before rejoining",
			obs: Observation{StoreOK: true, Cluster: cluster("n1", primaryN1),
				Local: Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDown, ControlTLI: 1, CheckpointLSN: 0x3000100}},
			want: []Kind{Rewind, StartStandby},
		},
		{
			name: "old primary returns clean: starts as a standby without rewind",
			obs: Observation{StoreOK: true, Cluster: cluster("n1", primaryN1),
				Local: Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDown, ControlTLI: 1, CheckpointLSN: 0x2FFFF90}},
			want: []Kind{StartStandby},
		},
		{
			name: "old primary returns after a crash: crash recovery, then rewind",
			obs: Observation{StoreOK: true, Cluster: cluster("n1", primaryN1),
				Local: Local{Data: DataValid, SystemID: "42", ControlState: ControlInProduction, ControlTLI: 1, CheckpointLSN: 0x2000000}},
			want: []Kind{CrashRecover, Rewind, StartStandby},
		},
		{
			name: "old primary whose rewind failed is rebuilt from the leader",
			obs: Observation{StoreOK: true, Cluster: cluster("n1", primaryN1),
				Local:  Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDown, ControlTLI: 1, CheckpointLSN: 0x3000100},
				Memory: Memory{RewindFailed: true}},
			want: []Kind{Reinit, StartStandby},
		},
		{
			name: "standby whose rewind failed is rebuilt even though it was last a standby",
			obs: Observation{StoreOK: true, Cluster: cluster("n1", primaryN1),
				Local:  Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDownRecov, ControlTLI: 1},
				Memory: Memory{RewindFailed: true}},
			want: []Kind{Reinit, StartStandby},
		},
		{
			name: "standby that keeps failing to start under the leader is rewound",
			obs: Observation{StoreOK: true, Cluster: cluster("n1", primaryN1),
				Local:  Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDownRecov, ControlTLI: 2},
				Memory: Memory{StartFailures: 3}},
			want: []Kind{Rewind, StartStandby},
		},
		{
			name: "running standby on a diverged timeline that cannot stream is rewound",
			obs:  standbyUnderN1(0x3000200, func(l *Local) { l.Streaming = false }),
			want: []Kind{Stop, Rewind, StartStandby},
		},
		{
			// Seen in the chaos suite: the receiver streams the leader's
			// timeline 2 ("streaming", received_tli 2), but the startup
			// process replays timeline 3 of a primary killed moments after
			// its promotion and refuses timeline 2 as "not a child".
			name: "standby that looks streaming but replays a timeline off the leader's history is rewound",
			obs:  standbyUnderN1(0x3000200, func(l *Local) { l.Timeline, l.ReplayTimeline = 2, 3 }),
			want: []Kind{Stop, Rewind, StartStandby},
		},
		{
			name: "standby that received the leader's switch and replays the old timeline up to it is left alone",
			obs:  standbyUnderN1(0x3000200, func(l *Local) { l.Timeline, l.ReplayTimeline, l.ReplayedLSN = 2, 1, 0x3000000 }),
			want: []Kind{},
		},
		{
			// Seen in the chaos suite (primary-repl-cut): the receiver is
			// down, so the probe's timeline is the restartpoint's (1), from
			// before the switch the standby did replay.
			name: "standby without a receiver that replays the leader's timeline is not rewound",
			obs:  standbyUnderN1(0x3000200, func(l *Local) { l.Streaming, l.Timeline, l.ReplayTimeline = false, 1, 2 }),
			want: []Kind{},
		},
		{
			// Seen in the chaos suite (double-kill, async, seed 221): the
			// standby followed a primary promoted on timeline 3 and killed,
			// then the leader was promoted from timeline 1 onto 2 (in this
			// fixture); the standby's recovery still targets 3.
			name: "standby whose recovery targets a timeline off the leader's history is restarted",
			obs: standbyUnderN1(0x3000000, func(l *Local) {
				l.Streaming, l.Timeline, l.ReplayTimeline, l.HistoryTimelines = false, 1, 1, []int{2, 3}
			}),
			want: []Kind{Stop, Rewind, StartStandby},
		},
		{
			name: "streaming standby with an old stray history file is left alone",
			obs:  standbyUnderN1(0x3000200, func(l *Local) { l.Timeline, l.ReplayTimeline, l.HistoryTimelines = 2, 2, []int{2, 3} }),
			want: []Kind{},
		},
		{
			// Seen in the chaos suite (etcd-quorum-lost, sync, seed 223): the
			// leader's promotion ended timeline 2 where this standby's replay
			// stood; its restartpoint is still on timeline 1.
			name: "standby replaying a timeline newer than its restartpoint's, up to the leader's fork, is not rewound",
			obs: func() Observation {
				l := runningStandby(0x3000000, "n3")
				l.Streaming, l.Timeline, l.ReplayTimeline = false, 1, 2
				n3 := Member{Name: "n3", Role: RolePrimary, Healthy: true, Timeline: 3, WalLSN: 0x3000100,
					History: []TimelineSwitch{{TLI: 1, Switch: 0x2000000}, {TLI: 2, Switch: 0x3000000}}, Revision: 90}
				return Observation{StoreOK: true, Cluster: cluster("n3", n3), Local: l}
			}(),
			want: []Kind{},
		},
		{
			// The sync host loss's outlier (BenchmarkSyncHostLossOtherStandbyAhead):
			// the standby outside the sync key had replayed WAL the promoted
			// one never received; the new primary's commits wait for it.
			name: "sync mode: a standby that just followed and replayed past the leader's fork is rewound at once",
			obs: inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
				l.Streaming, l.ReplayTimeline, l.ReplayTimelineFresh, l.FollowingSince = false, 1, true, t0.Add(-time.Second)
			})),
			want: []Kind{Stop, Rewind, StartStandby},
		},
		{
			name: "sync mode: the same while streaming is rewound at once too",
			obs: inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
				l.ReplayTimeline, l.ReplayTimelineFresh, l.FollowingSince = 1, true, t0.Add(-time.Second)
			})),
			want: []Kind{Stop, Rewind, StartStandby},
		},
		{
			name: "sync mode: a replay timeline kept from an earlier loop waits for the settle",
			obs: inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
				l.Streaming, l.ReplayTimeline, l.FollowingSince = false, 1, t0.Add(-time.Second)
			})),
			want: []Kind{},
		},
		{
			name: "async mode: a standby that just followed and replayed past the leader's fork waits for the settle",
			obs: standbyUnderN1(0x3000200, func(l *Local) {
				l.Streaming, l.ReplayTimeline, l.ReplayTimelineFresh, l.FollowingSince = false, 1, true, t0.Add(-time.Second)
			}),
			want: []Kind{},
		},
		{
			name: "sync mode: replayed past the fork of a leader that is not up waits",
			obs: func() Observation {
				o := inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
					l.Streaming, l.ReplayTimeline, l.ReplayTimelineFresh, l.FollowingSince = false, 1, true, t0.Add(-time.Second)
				}))
				n1 := o.Cluster.Members["n1"]
				n1.Healthy = false
				o.Cluster.Members["n1"] = n1
				return o
			}(),
			want: []Kind{},
		},
		{
			name: "sync mode: a standby that just followed and only received past the leader's fork waits for the settle",
			obs: inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
				l.Streaming, l.ReplayTimeline, l.ReplayTimelineFresh, l.ReplayedLSN, l.FollowingSince = false, 1, true, 0x3000000, t0.Add(-time.Second)
			})),
			want: []Kind{},
		},
		{
			name: "sync mode: a standby that just followed and replays a timeline newer than the leader's waits for the settle",
			obs: inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
				l.Streaming, l.Timeline, l.ReplayTimeline, l.ReplayTimelineFresh, l.FollowingSince = false, 3, 3, true, t0.Add(-time.Second)
			})),
			want: []Kind{},
		},
		{
			name: "sync mode: a standby that replayed past the leader's fork within the rewind cooldown waits",
			obs: func() Observation {
				o := inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
					l.Streaming, l.ReplayTimeline, l.ReplayTimelineFresh, l.FollowingSince = false, 1, true, t0.Add(-time.Second)
				}))
				o.Memory.LastRewind, o.Memory.LastRewindFrom = t0.Add(-5*time.Second), "n1"
				return o
			}(),
			want: []Kind{},
		},
		{
			// Back-to-back failovers (bench/failover's forced trials, a
			// double failure): the cooldown guards against a loop of
			// rewinds from one leader, not against the next divergence.
			name: "sync mode: a standby rewound from another leader within the cooldown is rewound at once",
			obs: func() Observation {
				o := inSyncMode(standbyUnderN1(0x3000200, func(l *Local) {
					l.Streaming, l.ReplayTimeline, l.ReplayTimelineFresh, l.FollowingSince = false, 1, true, t0.Add(-time.Second)
				}))
				o.Memory.LastRewind, o.Memory.LastRewindFrom = t0.Add(-5*time.Second), "n3"
				return o
			}(),
			want: []Kind{Stop, Rewind, StartStandby},
		},
		{
			name: "data directory of another system is never touched",
			obs: Observation{StoreOK: true, Cluster: cluster("n1", primaryN1),
				Local: Local{Data: DataValid, SystemID: "7", ControlState: ControlShutDown}},
			want: []Kind{Wait},
		},
		{
			name: "leaderless cluster: a stopped node starts read-only to take part",
			obs:  Observation{StoreOK: true, Cluster: cluster(""), Local: Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDown}},
			want: []Kind{StartStandby},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.obs
			o.Now = t0
			if o.Self == "" {
				o.Self = "self"
			}
			ns := o.Settings.NoFailover
			o.Settings = settings()
			o.Settings.NoFailover = ns
			plan := Decide(o)
			if got := plan.Kinds(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v, want %v\nplan: %v", got, tc.want, plan)
			}
		})
	}
}

func TestNeedsRewind(t *testing.T) {
	hist := []TimelineSwitch{{TLI: 1, Switch: 0x3000000}, {TLI: 2, Switch: 0x5000000}}
	cases := []struct {
		name string
		tli  int
		pos  lsn.LSN
		want bool
	}{
		{"same timeline as the leader", 3, 0x9000000, false},
		{"behind the fork point of its timeline", 1, 0x2FFFFFF, false},
		{"WAL ending exactly at the fork point is shared", 1, 0x3000000, false},
		{"one byte past the fork point diverged", 1, 0x3000001, true},
		{"past the fork point", 2, 0x5000001, true},
		{"timeline unknown to the leader", 4, 0x100, true},
		{"unknown local timeline", 0, 0x100, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := NeedsRewind(tc.tli, tc.pos, 3, hist); got != tc.want {
				t.Fatalf("NeedsRewind(%d, %s) = %v, want %v", tc.tli, tc.pos, got, tc.want)
			}
		})
	}
}

func TestOperatorReinit(t *testing.T) {
	primaryN1 := Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x5000000, Revision: 90}
	reinit := func(fromBackup bool) Cluster {
		c := cluster("n1", primaryN1)
		c.Reinit = map[string]bool{"self": true}
		if fromBackup {
			c.ReinitFromBackup = map[string]string{"self": ""}
		}
		return c
	}
	cases := []struct {
		name       string
		cluster    Cluster
		local      Local
		repository bool
		want       []Kind
		wantReason string
	}{
		{"base backup of the leader", reinit(false), runningStandby(0x3000000, "n1"), true,
			[]Kind{Stop, Reinit, ClearReinit, StartStandby}, "reinit requested"},
		{"from the newest backup when this node has a repository", reinit(true), runningStandby(0x3000000, "n1"), true,
			[]Kind{Stop, RestoreStandby, ClearReinit, StartStandby}, "newest backup"},
		{"from a backup without a repository falls back to a base backup, and says so", reinit(true), runningStandby(0x3000000, "n1"), false,
			[]Kind{Stop, Reinit, ClearReinit, StartStandby}, "no backup repository"},
		{"a stopped node is not stopped again", reinit(true), Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDownRecov, ControlTLI: 1}, true,
			[]Kind{RestoreStandby, ClearReinit, StartStandby}, "newest backup"},
		{"an empty data directory is restored too", reinit(true), Local{Data: DataEmpty}, true,
			[]Kind{RestoreStandby, ClearReinit, StartStandby}, "newest backup"},
		{"the primary refuses to rebuild itself", func() Cluster { c := reinit(true); c.Leader.Name = "self"; return c }(), runningPrimary(0x5000000), true,
			[]Kind{ClearReinit}, "switch over first"},
		{"no leader to follow: wait", func() Cluster { c := reinit(true); c.Leader = nil; return c }(), runningStandby(0x3000000, ""), true,
			[]Kind{Wait}, "waiting for a leader"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Observation{Now: t0, Self: "self", Settings: settings(), StoreOK: true, Cluster: tc.cluster, Local: tc.local}
			o.Settings.HasRepository = tc.repository
			plan := Decide(o)
			if got := plan.Kinds(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v, want %v\nplan: %v", got, tc.want, plan)
			}
			found := false
			for _, a := range plan {
				found = found || strings.Contains(a.Reason, tc.wantReason)
			}
			if !found {
				t.Fatalf("no step says %q: %v", tc.wantReason, plan)
			}
			for _, a := range plan {
				if (a.Kind == RestoreStandby || a.Kind == Reinit) && a.Target != "n1" {
					t.Fatalf("%s rebuilds from %q, want the leader n1", a.Kind, a.Target)
				}
			}
		})
	}
}

func TestClusterRestore(t *testing.T) {
	restoring := func(node string, leader string) Cluster {
		c := cluster(leader, Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x5000000, Revision: 90})
		c.Restore = &ClusterRestore{Node: node, Args: []string{"--time", "2026-11-23 10:00:00+00"}, By: "ops"}
		return c
	}
	primary := runningPrimary(0x5000000)
	cases := []struct {
		name   string
		c      Cluster
		local  Local
		holds  bool
		want   []Kind
		reason string
	}{
		{"the restoring primary keeps its key and restores (the step archives its last WAL and stops it)", restoring("self", "self"), primary, true,
			[]Kind{RenewLeader, RestoreCluster}, "ops"},
		{"a stopped restoring node (retry) restores again", restoring("self", "self"), Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDown}, true,
			[]Kind{RenewLeader, RestoreCluster}, "ops"},
		{"a restoring node without the key takes it first", restoring("self", ""), Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDown}, false,
			[]Kind{AcquireLeader, RestoreCluster}, "becomes its primary"},
		{"a restoring node never restores under another leader", restoring("self", "n1"), Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDown}, false,
			[]Kind{Wait}, "give up the leader key"},
		{"another node stops and waits", restoring("n1", "n1"), runningStandby(0x5000000, "n1"), false,
			[]Kind{Stop, Wait}, "under way on n1"},
		{"another node, the leader lost, still does not run for election", restoring("n1", ""), Local{Data: DataValid, SystemID: "42", ControlState: ControlShutDownRecov, ControlTLI: 1, CheckpointLSN: 0x6000000}, false,
			[]Kind{Wait}, "rebuilt from the same backup"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Observation{Now: t0, Self: "self", Settings: settings(), StoreOK: true, Cluster: tc.c, Local: tc.local,
				Memory: Memory{HoldsLeader: tc.holds, LastRenew: t0}}
			plan := Decide(o)
			if got := plan.Kinds(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %v, want %v\nplan: %v", got, tc.want, plan)
			}
			found := false
			for _, a := range plan {
				found = found || strings.Contains(a.Reason, tc.reason)
			}
			if !found {
				t.Fatalf("no step says %q: %v", tc.reason, plan)
			}
		})
	}
}

func TestStrayTimelines(t *testing.T) {
	leader := Member{Timeline: 8, History: []TimelineSwitch{{TLI: 1}, {TLI: 2}, {TLI: 5}, {TLI: 6}}}
	got := StrayTimelines([]int{2, 3, 4, 5, 6, 7, 8, 9}, 6, leader)
	if !reflect.DeepEqual(got, []int{7, 9}) {
		t.Fatalf("stray timelines above 6 = %v, want [7 9]: 8 is the leader's, 3 and 4 are below the replay timeline", got)
	}
	if got := StrayTimelines([]int{6, 8}, 6, leader); len(got) != 0 {
		t.Fatalf("stray timelines = %v, want none", got)
	}
}
