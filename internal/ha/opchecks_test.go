package ha

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func opCluster(mode Mode) Cluster {
	return Cluster{
		Leader: &Leader{Name: "n1"},
		Members: map[string]Member{
			"n1": {Name: "n1", Role: RolePrimary, State: "running", Healthy: true, WalLSN: 100, Repository: true},
			"n2": {Name: "n2", Role: RoleStandby, State: "streaming", Healthy: true, Streaming: true, Following: "n1", ReceivedLSN: 100, ReplayedLSN: 100},
			"n3": {Name: "n3", Role: RoleStandby, State: "streaming", Healthy: true, Streaming: true, Following: "n1", ReceivedLSN: 100, ReplayedLSN: 100},
		},
		Config: ClusterConfig{Mode: mode, SyncCount: 1, SyncMethod: "first", SyncTimeoutMs: 30000},
	}
}

func failedNames(cs []Check) []string {
	var out []string
	for _, c := range Failed(cs) {
		out = append(out, c.Name)
	}
	return out
}

func TestOperationChecks(t *testing.T) {
	strict := opCluster(ModeStrict)
	strict.Config.SyncCount = 2
	stopped := opCluster(ModeAsync)
	stopped.Config.Stopped = []string{"n3"}
	detached := opCluster(ModeAsync)
	detached.Config.Detached = []string{"n2"}
	paused := opCluster(ModeAsync)
	paused.Config.PausedNodes = []string{"n2"}
	paused.Config.Paused = true
	switching := opCluster(ModeAsync)
	switching.Switchover = &Switchover{From: "n1", To: "n2", By: "alice"}
	lagging := opCluster(ModeAsync)
	m := lagging.Members["n3"]
	m.Streaming, m.State = false, "running"
	lagging.Members["n3"] = m
	noLeader := opCluster(ModeAsync)
	noLeader.Leader = nil

	cases := []struct {
		name   string
		checks []Check
		fail   []string
	}{
		{"stop a standby", StopChecks(opCluster(ModeAsync), "n2"), nil},
		{"stop an unknown node", StopChecks(opCluster(ModeAsync), "n9"), []string{"node known"}},
		{"stop a stopped node", StopChecks(stopped, "n3"), []string{"not stopped already"}},
		{"stop during a switchover", StopChecks(switching, "n3"), []string{"no operation under way"}},
		{"stop a standby strict mode needs", StopChecks(strict, "n2"), []string{"strict mode keeps its synchronous standbys"}},
		{"stop the primary in strict mode", StopChecks(strict, "n1"), nil},
		{"start a running node", StartChecks(opCluster(ModeAsync), "n2"), []string{"stopped by the operator"}},
		{"start a stopped node", StartChecks(stopped, "n3"), nil},
		{"detach the primary", DetachChecks(opCluster(ModeAsync), "n1", true), []string{"not the primary"}},
		{"detach twice", DetachChecks(detached, "n2", true), []string{"not detached already"}},
		{"detach a standby strict mode needs", DetachChecks(strict, "n3", true), []string{"strict mode keeps its synchronous standbys"}},
		{"attach a detached standby", DetachChecks(detached, "n2", false), nil},
		{"attach an attached standby", DetachChecks(opCluster(ModeAsync), "n2", false), []string{"detached"}},
		{"reinit a standby", ReinitChecks(opCluster(ModeAsync), "n2", false), nil},
		{"reinit the primary", ReinitChecks(opCluster(ModeAsync), "n1", false), []string{"not the primary"}},
		{"reinit from a backup without a repository", ReinitChecks(opCluster(ModeAsync), "n2", true), []string{"node has a backup repository"}},
		{"reinit a paused node", ReinitChecks(paused, "n2", false), []string{"node not paused"}},
		{"reinit with no primary", ReinitChecks(noLeader, "n2", false), []string{"a primary to follow"}},
		{"rolling restart", RollingRestartChecks(opCluster(ModeAsync)), nil},
		{"rolling restart, paused", RollingRestartChecks(paused), []string{"automatic failover on"}},
		{"rolling restart, a standby not streaming", RollingRestartChecks(lagging), []string{"every member healthy"}},
		{"rolling restart, no primary", RollingRestartChecks(noLeader), []string{"leader present"}},
		{"config strict with too few standbys", ConfigChecks(opCluster(ModeAsync), ClusterConfig{Mode: ModeStrict, SyncCount: 3, SyncMethod: "first"}), []string{"enough synchronous standbys"}},
		{"config sync with too few standbys (degrades)", ConfigChecks(opCluster(ModeAsync), ClusterConfig{Mode: ModeSync, SyncCount: 3, SyncMethod: "first", SyncTimeoutMs: 1000}), nil},
		{"config invalid mode", ConfigChecks(opCluster(ModeAsync), ClusterConfig{Mode: "eventual", SyncCount: 1, SyncMethod: "first"}), []string{"configuration valid"}},
	}
	for _, c := range cases {
		if got := failedNames(c.checks); !slices.Equal(got, c.fail) {
			t.Errorf("%s: failed %v, want %v (checks %+v)", c.name, got, c.fail, c.checks)
		}
	}
	checks, node := RestoreClusterChecks(opCluster(ModeAsync), "")
	if node != "n1" || len(Failed(checks)) != 0 {
		t.Errorf("restore-cluster on the primary: node %q, failed %v", node, failedNames(checks))
	}
	if checks, _ := RestoreClusterChecks(opCluster(ModeAsync), "n2"); !slices.Equal(failedNames(checks), []string{"node has a backup repository", "node is the primary"}) {
		t.Errorf("restore-cluster on a standby without a repository: failed %v", failedNames(checks))
	}
	if checks, _ := RestoreClusterChecks(noLeader, ""); !slices.Equal(failedNames(checks), []string{"a node to restore on"}) {
		t.Errorf("restore-cluster without a primary or --node: failed %v", failedNames(checks))
	}
}

// A rolling restart asked while every standby is behind by more than a
// switchover allows (a backup's segment switch, a bulk load) fails only a
// transient check, which the operation waits out; a standby that may not
// be promoted fails it for good.
func TestRollingRestartWaitsForACandidateCatchingUp(t *testing.T) {
	behind := opCluster(ModeAsync)
	lm := behind.Members["n1"]
	lm.WalLSN = 100 + maxSwitchoverLag + 1
	behind.Members["n1"] = lm
	cs := RollingRestartChecks(behind)
	failed := Failed(cs)
	if len(failed) != 1 || failed[0].Name != "a switchover candidate" || !failed[0].Transient || !strings.Contains(failed[0].Detail, "caught up") {
		t.Fatalf("standbys catching up: failed %+v, want only a transient 'a switchover candidate' naming the lag", failed)
	}
	barred := opCluster(ModeAsync)
	for _, n := range []string{"n2", "n3"} {
		m := barred.Members[n]
		m.NoFailover = true
		barred.Members[n] = m
	}
	failed = Failed(RollingRestartChecks(barred))
	if len(failed) != 1 || failed[0].Name != "a switchover candidate" || failed[0].Transient {
		t.Fatalf("no standby may be promoted: failed %+v, want a lasting 'a switchover candidate'", failed)
	}
}

func TestRemoveChecks(t *testing.T) {
	gone := opCluster(ModeAsync)
	delete(gone.Members, "n3")
	all := []StoreVoter{{"n1", true}, {"n2", true}, {"n3", false}}
	goneSync := opCluster(ModeSync)
	delete(goneSync.Members, "n3")
	goneSync.Sync = &SyncState{Members: []string{"n3"}}
	cases := []struct {
		name  string
		c     Cluster
		node  string
		store []StoreVoter
		fail  []string
	}{
		{"a dead standby", gone, "n3", all, nil},
		{"a live standby", opCluster(ModeAsync), "n3", all, []string{"its agent is gone"}},
		{"the primary", gone, "n1", all, []string{"not the primary", "its agent is gone", "store keeps a quorum"}},
		{"a dead node when another store member is down too", gone, "n3", []StoreVoter{{"n1", true}, {"n2", false}, {"n3", false}}, []string{"store keeps a quorum"}},
		{"an unknown node", gone, "n9", all, []string{"node known"}},
		{"a node outside the store (external etcd), still in the sync set", goneSync, "n3", []StoreVoter{{"e1", true}}, nil},
	}
	for _, c := range cases {
		if got := failedNames(RemoveChecks(c.c, c.node, c.store)); !slices.Equal(got, c.fail) {
			t.Errorf("%s: failed %v, want %v", c.name, got, c.fail)
		}
	}
}

// A removed node whose agent starts again stops its PostgreSQL and then
// only waits: no campaign, no clone, no start.
func TestRemovedNodeTakesNoStep(t *testing.T) {
	c := cluster("n1", Member{Name: "n1", Role: RolePrimary, Healthy: true, Timeline: 1, WalLSN: 0x3000000})
	c.Config.Removed = []string{"n3"}
	running := Observation{Now: t0, Self: "n3", StoreOK: true, Settings: settings(), Cluster: c, Local: runningStandby(0x3000000, "n1")}
	if p := Decide(running); len(p) != 1 || p[0].Kind != Stop || !strings.Contains(p[0].Reason, "removed") {
		t.Fatalf("removed node running: plan %+v, want one stop naming the removal", p)
	}
	stopped := running
	stopped.Local.Running = false
	if p := Decide(stopped); len(p) != 1 || p[0].Kind != Wait {
		t.Fatalf("removed node stopped: plan %+v, want wait", p)
	}
	leaderless := stopped
	leaderless.Cluster.Leader = nil
	if p := Decide(leaderless); len(p) != 1 || p[0].Kind != Wait {
		t.Fatalf("removed node without a leader in the cluster: plan %+v, want wait (no campaign)", p)
	}
}

// switchoverTarget is n1, at 0x3000000, the target of a switchover from
// n2 in cluster c, a second after n2's leader key went.
func switchoverTarget(c Cluster) Observation {
	c.Switchover = &Switchover{From: "n2", To: "n1", By: "op"}
	return Observation{Now: t0, Self: "n1", StoreOK: true, Settings: settings(), Cluster: c, Local: runningStandby(0x3000000, ""),
		Memory: lostLeader(time.Second)}
}

// A switchover's target whose primary lost the key (handed over, or died
// before it could check) promotes only when it may: not detached, not
// delayed, and in a synchronous mode a member of the synchronous set
// (FuzzDecide found the target promoting regardless).
func TestSwitchoverTargetPromotesOnlyWhenItMay(t *testing.T) {
	o := switchoverTarget(cluster("", Member{Name: "n2", Role: RoleStandby, Healthy: true, Timeline: 1, ReceivedLSN: 0x3000000, Revision: 200}))
	if p := Decide(o); len(p) == 0 || p[0].Kind != AcquireLeader {
		t.Fatalf("an eligible switchover target: plan %+v, want it to take the key", p)
	}
	detached := o
	detached.Cluster.Config.Detached = []string{"n1"}
	sync := o
	sync.Cluster.Config.Mode = ModeSync
	sync.Cluster.Sync = &SyncState{Members: []string{"n2"}}
	for name, obs := range map[string]Observation{"detached": detached, "not synchronous": sync} {
		if p := Decide(obs); len(p) != 1 || p[0].Kind != Wait {
			t.Errorf("a %s switchover target: plan %+v, want it to wait", name, p)
		}
	}
}

// A switchover's target is not outranked by a synchronous member at the
// same position that sorts before it (ANY 1 of two synchronous standbys).
func TestSwitchoverTargetWinsTiesInTheSyncSet(t *testing.T) {
	c := cluster("", Member{Name: "n0", Role: RoleStandby, Healthy: true, Timeline: 1, ReceivedLSN: 0x3000000, ReplayedLSN: 0x3000000, Revision: 200})
	c.Config.Mode = ModeSync
	c.Sync = &SyncState{Members: []string{"n0", "n1"}, Quorum: 1}
	o := switchoverTarget(c)
	if p := Decide(o); len(p) == 0 || p[0].Kind != AcquireLeader {
		t.Fatalf("switchover target tied with n0: plan %+v, want it to take the key", p)
	}
	ahead := o
	ahead.Cluster.Members["n0"] = Member{Name: "n0", Role: RoleStandby, Healthy: true, Timeline: 1, ReceivedLSN: 0x3001000, ReplayedLSN: 0x3001000, Revision: 200}
	if p := Decide(ahead); len(p) != 1 || p[0].Kind != Wait {
		t.Fatalf("switchover target behind n0 (the primary died before handing over): plan %+v, want wait", p)
	}
}
