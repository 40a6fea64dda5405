package dcs

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

func TestLoadReadsEveryKeyOfTheClusterAndSkipsUnreadableValues(t *testing.T) {
	st := stores(t, "a", "b", "ctl")
	a, ctl := st["a"], st["ctl"]
	lead(t, a)
	if _, err := a.RenewLeader(tctx(t), lsn.LSN(0x5000028)); err != nil {
		t.Fatal(err)
	}
	must(t, "sync", a.SetSync(tctx(t), nil, ha.SyncState{Leader: "a", Members: []string{"b"}, Quorum: 1}))
	must(t, "timeline", a.ReserveTimeline(tctx(t), 4))
	must(t, "member", st["b"].PublishMember(tctx(t), ha.Member{Name: "b", Role: ha.RoleStandby}))
	must(t, "switchover", ctl.RequestSwitchover(tctx(t), ha.Switchover{From: "a", To: "b"}))
	must(t, "replay", ctl.SetReplay(tctx(t), "b", ha.ReplayRequest{Pause: true}))
	must(t, "history", ctl.AppendHistory(tctx(t), Event{Node: "a", Action: ha.Promote}))
	for k, v := range map[string]string{"initialize": "7300000000000000001", "takeover": "{not json", "members/x": "[]"} {
		if _, err := a.cli.Put(tctx(t), a.key(k), v); err != nil {
			t.Fatal(err)
		}
	}
	c := load(t, ctl)
	switch {
	case c.SystemID != "7300000000000000001":
		t.Errorf("system %q", c.SystemID)
	case c.Leader == nil || c.Leader.Name != "a" || c.Leader.Revision == 0:
		t.Errorf("leader %+v", c.Leader)
	case c.Optime != lsn.LSN(0x5000028):
		t.Errorf("optime %s", c.Optime)
	case c.Sync == nil || !slices.Equal(c.Sync.Members, []string{"b"}):
		t.Errorf("sync %+v", c.Sync)
	case c.MaxTimeline != 4:
		t.Errorf("timeline %d", c.MaxTimeline)
	case c.Switchover == nil || c.Switchover.To != "b":
		t.Errorf("switchover %+v", c.Switchover)
	case !c.Replay["b"].Pause:
		t.Errorf("replay %v", c.Replay)
	case c.Takeover != nil:
		t.Errorf("an unreadable takeover request read as %+v", c.Takeover)
	case len(c.Members) != 1 || c.Members["b"].Role != ha.RoleStandby:
		t.Errorf("members %v: want b only (x's record is unreadable)", c.Members)
	case c.Revision < c.Members["b"].Revision || c.Revision < c.Sync.Revision:
		t.Errorf("read revision %d older than a key it read", c.Revision)
	case c.Config.Mode != ha.DefaultClusterConfig().Mode:
		t.Errorf("config without a key %+v, want the defaults", c.Config)
	}
}

func TestHistoryReturnsTheEventsSinceInOrder(t *testing.T) {
	st := stores(t, "ctl")
	s := st["ctl"]
	t0 := time.Date(2020, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, action := range []ha.Kind{ha.EventSwitchoverRequest, ha.EventSwitchoverStop, ha.Promote} {
		must(t, "append", s.AppendHistory(tctx(t), Event{Time: t0.Add(time.Duration(2-i) * -time.Second), Node: "a", Action: action}))
	}
	must(t, "append without time", s.AppendHistory(tctx(t), Event{Node: "b", Action: ha.EventConfig}))
	got, err := s.History(tctx(t), t0.Add(-time.Second))
	must(t, "history", err)
	var actions []ha.Kind
	for _, e := range got {
		actions = append(actions, e.Action)
		if e.Key == "" {
			t.Errorf("event %s without its key", e.Action)
		}
	}
	if !slices.Equal(actions, []ha.Kind{ha.EventSwitchoverStop, ha.Promote, ha.EventConfig}) {
		t.Fatalf("history since t0-1s: %v, want second, third, now", actions)
	}
}

func TestWatchWakesStateAndMembersSeparately(t *testing.T) {
	st := stores(t, "a", "ctl")
	s := st["ctl"]
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"leader", wakesState}, {"sync", wakesState}, {"switchover", wakesState}, {"config", wakesState},
		{"reinit/b", wakesState}, {"members/a", wakesMembers}, {"optime", wakesNothing},
		{"history/00000000000000000001-a", wakesNothing}, {"jobs/nightly", wakesNothing}, {"runs/nightly/x-1", wakesNothing},
	} {
		if got := s.wakes(s.key(tc.key)); got != tc.want {
			t.Errorf("a change of %s wakes %d, want %d", tc.key, got, tc.want)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	state, members := s.Watch(ctx)
	// The watch starts in the background: write until it signals.
	eventually(t, "a member's publication signals members", 10*time.Second, func() (bool, string) {
		must(t, "publish", st["a"].PublishMember(tctx(t), ha.Member{Name: "a"}))
		select {
		case <-members:
			return true, ""
		case <-time.After(100 * time.Millisecond):
			return false, "no signal"
		}
	})
	eventually(t, "a request signals state", 10*time.Second, func() (bool, string) {
		must(t, "replay", s.SetReplay(tctx(t), "a", ha.ReplayRequest{Pause: true}))
		select {
		case <-state:
			return true, ""
		case <-time.After(100 * time.Millisecond):
			return false, "no signal"
		}
	})
}
