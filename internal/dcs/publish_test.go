package dcs

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

func TestPublishMemberReplacesItsOwnRecordUnderItsLease(t *testing.T) {
	st := stores(t, "a", "b")
	must(t, "publish a", st["a"].PublishMember(tctx(t), ha.Member{Name: "a", Role: ha.RolePrimary, Healthy: true, WalLSN: 0x100}))
	must(t, "publish b", st["b"].PublishMember(tctx(t), ha.Member{Name: "b", Role: ha.RoleStandby, ReceivedLSN: 0x80}))
	c1 := load(t, st["a"])
	a1 := c1.Members["a"]
	if a1.Role != ha.RolePrimary || a1.WalLSN != 0x100 || a1.Revision == 0 || c1.Members["b"].Role != ha.RoleStandby {
		t.Fatalf("members %+v, want a primary at 0/100 and b standby", c1.Members)
	}
	must(t, "republish a", st["a"].PublishMember(tctx(t), ha.Member{Name: "a", Role: ha.RolePrimary, Healthy: true, WalLSN: 0x200}))
	a2 := load(t, st["a"]).Members["a"]
	if a2.WalLSN != 0x200 || a2.Revision <= a1.Revision {
		t.Fatalf("after republishing: %+v (was at revision %d)", a2, a1.Revision)
	}

	// The record lives with the agent's lease: a dead agent's record goes.
	lease := st["a"].memberLease
	if _, err := st["a"].cli.Revoke(tctx(t), lease); err != nil {
		t.Fatal(err)
	}
	if c := load(t, st["b"]); len(c.Members) != 1 || c.Members["b"].Name != "b" {
		t.Fatalf("members after a's lease ended: %v, want b only", slices.Sorted(maps.Keys(c.Members)))
	}
	// Publishing again takes a new lease.
	must(t, "publish after the lease ended", st["a"].PublishMember(tctx(t), ha.Member{Name: "a", Role: ha.RolePrimary}))
	if st["a"].memberLease == lease {
		t.Fatal("the ended lease was reused")
	}
	if _, ok := load(t, st["b"]).Members["a"]; !ok {
		t.Fatal("a's record did not come back")
	}
}

func TestKeepMemberAliveHoldsTheRecordPastItsTTL(t *testing.T) {
	st := stores(t, "b")
	st["a"] = openStoreTTL(t, clusterOf(st["b"]), "a", shortTTL)
	must(t, "keep alive before any lease", st["a"].KeepMemberAlive(tctx(t)))
	must(t, "publish", st["a"].PublishMember(tctx(t), ha.Member{Name: "a"}))
	// Refresh for twice the 2 s TTL without rewriting the record.
	end := time.Now().Add(4 * time.Second)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		<-tick.C
		must(t, "keep alive", st["a"].KeepMemberAlive(tctx(t)))
		if _, ok := load(t, st["b"]).Members["a"]; !ok {
			t.Fatal("a's record expired although its lease was refreshed")
		}
	}
	eventually(t, "a's record gone once nobody refreshes it", 10*time.Second, func() (bool, string) {
		c := load(t, st["b"])
		_, ok := c.Members["a"]
		return !ok, fmt.Sprintf("members %v", slices.Sorted(maps.Keys(c.Members)))
	})
}

func TestRegisterWitnessWritesItsMarkOnce(t *testing.T) {
	st := stores(t, "w")
	must(t, "register", st["w"].RegisterWitness(tctx(t)))
	first, err := st["w"].cli.Get(tctx(t), st["w"].key("witness", "w"))
	must(t, "read mark", err)
	must(t, "register again", st["w"].RegisterWitness(tctx(t)))
	again, err := st["w"].cli.Get(tctx(t), st["w"].key("witness", "w"))
	must(t, "read mark", err)
	if len(again.Kvs) != 1 || again.Kvs[0].ModRevision != first.Kvs[0].ModRevision {
		t.Fatalf("registering again rewrote the mark (revision %d → %v)", first.Kvs[0].ModRevision, again.Kvs)
	}
	if c := load(t, st["w"]); !slices.Equal(c.Witnesses, []string{"w"}) {
		t.Fatalf("witnesses %v, want w", c.Witnesses)
	}
}

func TestRemoveNodeForgetsTheNodeAndLeavesTheOthers(t *testing.T) {
	st := stores(t, "b", "c", "ctl")
	ctl := st["ctl"]
	for _, n := range []string{"b", "c"} {
		must(t, "publish "+n, st[n].PublishMember(tctx(t), ha.Member{Name: n, Role: ha.RoleStandby}))
		must(t, "replay "+n, ctl.SetReplay(tctx(t), n, ha.ReplayRequest{Pause: true}))
	}
	must(t, "rebuild b", ctl.RequestReinit(tctx(t), "b", false, load(t, ctl).Revision))
	must(t, "witness b", st["b"].RegisterWitness(tctx(t)))
	if _, err := ctl.UpdateConfig(tctx(t), func(cfg *ha.ClusterConfig) error {
		cfg.Stopped, cfg.PausedNodes = []string{"b"}, []string{"b", "c"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // running it again finishes, and changes, nothing more
		res, err := ctl.RemoveNode(tctx(t), "b")
		must(t, "remove b", err)
		if res.Node != "b" || res.StoreMemberID != "" {
			t.Fatalf("remove result %+v: b has no etcd member", res)
		}
		c := load(t, ctl)
		if _, ok := c.Members["b"]; ok || c.Reinit["b"] || len(c.Witnesses) != 0 {
			t.Fatalf("b's keys stayed: member %v, rebuild %v, witnesses %v", ok, c.Reinit, c.Witnesses)
		}
		if _, ok := c.Replay["b"]; ok {
			t.Fatal("b's replay request stayed")
		}
		if _, ok := c.Members["c"]; !ok || !c.Replay["c"].Pause {
			t.Fatalf("c's keys went with b's: members %v, replay %v", slices.Sorted(maps.Keys(c.Members)), c.Replay)
		}
		if !slices.Equal(c.Config.Removed, []string{"b"}) || len(c.Config.Stopped) != 0 || !slices.Equal(c.Config.PausedNodes, []string{"c"}) {
			t.Fatalf("config after removal: removed %v, stopped %v, paused %v", c.Config.Removed, c.Config.Stopped, c.Config.PausedNodes)
		}
	}
}

func TestMembersReportsTheStoresOwnMember(t *testing.T) {
	st := stores(t, "ctl")
	ms, err := st["ctl"].Members(tctx(t))
	must(t, "members", err)
	if len(ms) != 1 || ms[0].Name != testMember || !ms[0].Reachable || !ms[0].Leader || ms[0].ClientURL != testEtcd(t) || ms[0].RaftIndex == 0 {
		t.Fatalf("members %+v, want the one reachable leader %s at %s", ms, testMember, testEtcd(t))
	}
	must(t, "move leadership to the leader", st["ctl"].MoveStoreLeader(tctx(t), testMember))
	if err := st["ctl"].MoveStoreLeader(tctx(t), "nobody"); err == nil || !strings.Contains(err.Error(), testMember) {
		t.Fatalf("move to an unknown member: %v, want a refusal listing the members", err)
	}
	if v := etcdMember.View(); !v.Leader || len(v.Peers) != 0 || v.ElectionTimeout <= 0 {
		t.Fatalf("raft view of the single member: %+v", v)
	}
}
