package dcs

import (
	"errors"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

func restoreRequest(node string) ha.ClusterRestore {
	return ha.ClusterRestore{Node: node, Target: ha.RestoreTarget{Immediate: true}, By: "op", At: time.Now().UTC()}
}

func TestClusterRestoreRequestRefusedWhileAnotherOperationIsUnderWay(t *testing.T) {
	st := stores(t, "a", "ctl")
	ctl := st["ctl"]
	lead(t, st["a"])
	must(t, "switchover", ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b"}))
	if err := ctl.RequestClusterRestore(tctx(t), restoreRequest("a")); err == nil {
		t.Fatal("restore requested during a switchover")
	}
	must(t, "cancel switchover", ctl.CancelSwitchover(tctx(t)))
	must(t, "restore", ctl.RequestClusterRestore(tctx(t), restoreRequest("a")))
	if err := ctl.RequestClusterRestore(tctx(t), restoreRequest("b")); err == nil {
		t.Fatal("a second restore request replaced the first")
	}
	c := load(t, ctl)
	if c.Restore == nil || c.Restore.Node != "a" || !c.Restore.Target.Immediate || c.Restore.Revision == 0 {
		t.Fatalf("restore request %+v, want a's with its revision", c.Restore)
	}
}

func TestClearClusterRestoreLeavesANewerRequest(t *testing.T) {
	st := stores(t, "a", "ctl")
	ctl, agent := st["ctl"], st["a"]
	must(t, "restore on a", ctl.RequestClusterRestore(tctx(t), restoreRequest("a")))
	given := load(t, agent).Restore // the agent gives up on this one
	must(t, "abort", ctl.CancelClusterRestore(tctx(t)))
	must(t, "restore on b", ctl.RequestClusterRestore(tctx(t), restoreRequest("b")))
	mustChange(t, "withdraw the request given up", agent.ClearClusterRestore(tctx(t), given.Revision), "restore")
	now := load(t, agent).Restore
	if now == nil || now.Node != "b" {
		t.Fatalf("after the stale withdrawal the request is %+v, want b's", now)
	}
	must(t, "withdraw the current request", agent.ClearClusterRestore(tctx(t), now.Revision))
	if c := load(t, agent); c.Restore != nil {
		t.Fatalf("request %+v survived its withdrawal", c.Restore)
	}
}

func TestReserveRestoreTimelineNeedsTheLeaderKeyAndTheSameRequest(t *testing.T) {
	st := stores(t, "a", "b", "ctl")
	lead(t, st["a"])
	must(t, "restore", st["ctl"].RequestClusterRestore(tctx(t), restoreRequest("a")))
	rev := load(t, st["a"]).Restore.Revision
	if err := st["b"].ReserveRestoreTimeline(tctx(t), 2, rev); err == nil {
		t.Fatal("b reserved a timeline without the leader key")
	}
	if err := st["a"].ReserveRestoreTimeline(tctx(t), 2, rev-1); err == nil {
		t.Fatal("a reserved a timeline for a request at another revision")
	}
	must(t, "reserve 2", st["a"].ReserveRestoreTimeline(tctx(t), 2, rev))
	if err := st["a"].ReserveRestoreTimeline(tctx(t), 2, rev); err == nil {
		t.Fatal("timeline 2 reserved twice")
	}
	must(t, "abort", st["ctl"].CancelClusterRestore(tctx(t)))
	if err := st["a"].ReserveRestoreTimeline(tctx(t), 3, rev); err == nil {
		t.Fatal("a reserved a timeline for a withdrawn request")
	}
	if c := load(t, st["a"]); c.MaxTimeline != 2 {
		t.Fatalf("reserved timeline %d, want 2", c.MaxTimeline)
	}
}

func TestFinishClusterRestoreHandsEveryOtherMemberItsRebuild(t *testing.T) {
	st := stores(t, "a", "b", "ctl")
	ctl, a := st["ctl"], st["a"]
	must(t, "rebuild of a", ctl.RequestReinit(tctx(t), "a", false, load(t, ctl).Revision))
	lead(t, a)
	must(t, "restore", ctl.RequestClusterRestore(tctx(t), restoreRequest("a")))
	must(t, "switchover", ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b"}))
	if _, err := a.cli.Put(tctx(t), a.key("takeover"), `{"to":"b"}`); err != nil {
		t.Fatal(err)
	}
	rev := load(t, a).Restore.Revision
	if err := st["b"].FinishClusterRestore(tctx(t), "b", rev, []string{"a"}, "bk1"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("finish by b, not the leader: %v, want ErrNotLeader", err)
	}
	if c := load(t, a); c.Restore == nil || c.Reinit["b"] {
		t.Fatalf("a refused finish changed the store: restore %+v, rebuilds %v", c.Restore, c.Reinit)
	}
	must(t, "finish", a.FinishClusterRestore(tctx(t), "a", rev, []string{"b", "c"}, "bk1"))
	c := load(t, a)
	if c.Restore != nil || c.Switchover != nil || c.Takeover != nil {
		t.Fatalf("after the finish: restore %+v, switchover %+v, takeover %+v; want none", c.Restore, c.Switchover, c.Takeover)
	}
	if c.Reinit["a"] || !c.Reinit["b"] || !c.Reinit["c"] {
		t.Fatalf("rebuild requests %v, want b and c, not a", c.Reinit)
	}
	if c.ReinitFromBackup["b"] != "bk1" || c.ReinitFromBackup["c"] != "bk1" {
		t.Fatalf("rebuild sources %v, want backup bk1 for b and c", c.ReinitFromBackup)
	}
}

// withdrawnRestore has a lead and ctl request a whole-cluster restore on
// a, then withdraw it (after a claimed the timeline); it returns the
// stores of a and ctl and the withdrawn request's revision.
func withdrawnRestore(t *testing.T) (map[string]*Store, int64) {
	t.Helper()
	st := stores(t, "a", "ctl")
	lead(t, st["a"])
	must(t, "restore", st["ctl"].RequestClusterRestore(tctx(t), restoreRequest("a")))
	rev := load(t, st["a"]).Restore.Revision
	must(t, "abort", st["ctl"].CancelClusterRestore(tctx(t)))
	return st, rev
}

func TestFinishClusterRestoreCompletesAWithdrawnRequest(t *testing.T) {
	st, rev := withdrawnRestore(t)
	must(t, "finish", st["a"].FinishClusterRestore(tctx(t), "a", rev, []string{"b"}, "bk1"))
	if c := load(t, st["a"]); c.ReinitFromBackup["b"] != "bk1" {
		t.Fatalf("rebuild sources %v, want b from bk1", c.ReinitFromBackup)
	}
}

func TestFinishClusterRestoreDoesNotEndANewerRequest(t *testing.T) {
	st, rev := withdrawnRestore(t)
	must(t, "another restore", st["ctl"].RequestClusterRestore(tctx(t), restoreRequest("a")))
	mustChange(t, "finish of the first request", st["a"].FinishClusterRestore(tctx(t), "a", rev, []string{"b"}, "bk1"), "restore")
	c := load(t, st["a"])
	if c.Restore == nil || c.Restore.Revision <= rev {
		t.Fatalf("restore request %+v, want the newer one kept", c.Restore)
	}
	if c.Reinit["b"] {
		t.Fatal("a failed finish handed out a rebuild")
	}
}
