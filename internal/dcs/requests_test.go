package dcs

import (
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// lead makes node take the leader key, failing the test otherwise.
func lead(t *testing.T, s *Store) {
	t.Helper()
	if ok, _, err := s.AcquireLeader(tctx(t)); err != nil || !ok {
		t.Fatalf("%s acquire: %v, %v", s.name, ok, err)
	}
}

func TestSwitchoverRequestNeedsTheNamedLeaderAndNoOtherRequest(t *testing.T) {
	st := stores(t, "a", "ctl")
	ctl := st["ctl"]
	if err := ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b"}); err == nil {
		t.Fatal("switchover requested with no leader")
	}
	lead(t, st["a"])
	if err := ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "b", To: "a"}); err == nil {
		t.Fatal("switchover requested from b, which does not lead")
	}
	must(t, "request a → b", ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b", By: "op"}))
	if err := ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "c"}); err == nil {
		t.Fatal("a second switchover request replaced the first")
	}
	if c := load(t, ctl); c.Switchover == nil || c.Switchover.To != "b" || c.Switchover.By != "op" {
		t.Fatalf("switchover request %+v, want a → b by op", c.Switchover)
	}
}

func TestClearSwitchoverOnAStaleReadLeavesTheNewerRequest(t *testing.T) {
	st := stores(t, "a", "ctl")
	ctl, agent := st["ctl"], st["a"]
	lead(t, agent)
	must(t, "request a → b", ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b"}))
	seen := load(t, agent) // the agent decides to clear what it saw
	// Meanwhile the operator cancels and asks for another target.
	must(t, "cancel", ctl.CancelSwitchover(tctx(t)))
	must(t, "request a → c", ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "c"}))

	ce := mustChange(t, "clear on the stale read", agent.ClearSwitchover(tctx(t), seen.Revision), "switchover")
	if ce.Read != seen.Revision || ce.Now <= seen.Revision {
		t.Errorf("change reported %+v, want read %d and a later write", ce, seen.Revision)
	}
	now := load(t, agent)
	if now.Switchover == nil || now.Switchover.To != "c" {
		t.Fatalf("after the stale clear the request is %+v, want the newer a → c", now.Switchover)
	}
	must(t, "clear on a fresh read", agent.ClearSwitchover(tctx(t), now.Revision))
	if c := load(t, agent); c.Switchover != nil {
		t.Fatalf("request %+v survived its clear", c.Switchover)
	}
	must(t, "clear with nothing there", agent.ClearSwitchover(tctx(t), now.Revision))
}

func TestClearSwitchoverOnAReadThatSawNoneLeavesANewRequest(t *testing.T) {
	st := stores(t, "a", "ctl")
	lead(t, st["a"])
	before := load(t, st["a"])
	must(t, "request", st["ctl"].RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b"}))
	mustChange(t, "clear on a read older than the request", st["a"].ClearSwitchover(tctx(t), before.Revision), "switchover")
	if c := load(t, st["a"]); c.Switchover == nil {
		t.Fatal("a request written after the read was cleared")
	}
}

func TestCancelSwitchoverWithdrawsWhateverIsThere(t *testing.T) {
	st := stores(t, "a", "ctl")
	lead(t, st["a"])
	must(t, "cancel with nothing there", st["ctl"].CancelSwitchover(tctx(t)))
	must(t, "request", st["ctl"].RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b", At: time.Now().Add(time.Hour)}))
	must(t, "cancel", st["ctl"].CancelSwitchover(tctx(t)))
	if c := load(t, st["ctl"]); c.Switchover != nil {
		t.Fatalf("request %+v survived the cancel", c.Switchover)
	}
}

func TestTakeoverRequestOnlyWithoutLeaderAndItsClearComparesTheRead(t *testing.T) {
	st := stores(t, "a", "b", "ctl")
	ctl := st["ctl"]
	lead(t, st["a"])
	if err := ctl.RequestTakeover(tctx(t), ha.Takeover{To: "b"}); err == nil {
		t.Fatal("takeover requested while a holds the leader key")
	}
	must(t, "release", st["a"].ReleaseLeader(tctx(t)))
	must(t, "takeover to b", ctl.RequestTakeover(tctx(t), ha.Takeover{To: "b", Force: true}))
	if err := ctl.RequestTakeover(tctx(t), ha.Takeover{To: "a"}); err == nil {
		t.Fatal("a second takeover request replaced the first")
	}
	c1 := load(t, st["b"])
	if c1.Takeover == nil || c1.Takeover.To != "b" || !c1.Takeover.Force {
		t.Fatalf("takeover request %+v, want forced to b", c1.Takeover)
	}
	must(t, "clear on the read", st["b"].ClearTakeover(tctx(t), c1.Revision))
	c2 := load(t, st["b"])
	if c2.Takeover != nil {
		t.Fatalf("takeover %+v survived its clear", c2.Takeover)
	}
	must(t, "takeover to a", ctl.RequestTakeover(tctx(t), ha.Takeover{To: "a"}))
	mustChange(t, "clear on a read that saw no request", st["b"].ClearTakeover(tctx(t), c2.Revision), "takeover")
	if c := load(t, ctl); c.Takeover == nil || c.Takeover.To != "a" {
		t.Fatalf("after the stale clear the takeover is %+v, want the newer one to a", c.Takeover)
	}
}

func TestReinitRequestAndClearCompareWithTheirReads(t *testing.T) {
	st := stores(t, "b", "ctl")
	ctl, agent := st["ctl"], st["b"]
	c0 := load(t, ctl)
	must(t, "request from backup", ctl.RequestReinit(tctx(t), "b", true, c0.Revision))
	c1 := load(t, ctl)
	if !c1.Reinit["b"] {
		t.Fatalf("rebuild requests %v, want b", c1.Reinit)
	}
	if id, ok := c1.ReinitFromBackup["b"]; !ok || id != "" {
		t.Fatalf("rebuild sources %v, want b from the newest backup", c1.ReinitFromBackup)
	}
	// A second operator checked on the read before the first request.
	mustChange(t, "request on a read older than the pending one", ctl.RequestReinit(tctx(t), "b", false, c0.Revision), "reinit/b")
	if c := load(t, ctl); c.ReinitFromBackup == nil {
		t.Fatal("the stale request replaced the pending one")
	}
	mustChange(t, "clear on a read older than the request", agent.ClearReinit(tctx(t), "b", c0.Revision), "reinit/b")
	must(t, "request for c", ctl.RequestReinit(tctx(t), "c", false, c1.Revision))
	must(t, "clear on the read", agent.ClearReinit(tctx(t), "b", c1.Revision))
	c := load(t, ctl)
	if c.Reinit["b"] || !c.Reinit["c"] {
		t.Fatalf("rebuild requests %v, want c only", c.Reinit)
	}
	if _, fromBackup := c.ReinitFromBackup["c"]; fromBackup {
		t.Fatalf("c's rebuild reads as from a backup: %v", c.ReinitFromBackup)
	}
}

func TestReplayRequestIsTheOperatorsLatestWord(t *testing.T) {
	st := stores(t, "ctl")
	ctl := st["ctl"]
	must(t, "pause", ctl.SetReplay(tctx(t), "b", ha.ReplayRequest{Pause: true}))
	if c := load(t, ctl); !c.Replay["b"].Pause {
		t.Fatalf("replay requests %v, want b paused", c.Replay)
	}
	until := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	must(t, "until", ctl.SetReplay(tctx(t), "b", ha.ReplayRequest{Until: until}))
	if c := load(t, ctl); c.Replay["b"].Pause || !c.Replay["b"].Until.Equal(until) {
		t.Fatalf("replay request %+v, want until %v and no pause", c.Replay["b"], until)
	}
	must(t, "cancel", ctl.CancelReplay(tctx(t), "b"))
	if c := load(t, ctl); len(c.Replay) != 0 {
		t.Fatalf("replay requests %v after the cancel", c.Replay)
	}
}
