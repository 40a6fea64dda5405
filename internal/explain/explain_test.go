package explain

import (
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

var base = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func ev(ms int, node string, action ha.Kind, target, result string) dcs.Event {
	return dcs.Event{Time: base.Add(time.Duration(ms) * time.Millisecond), Node: node, Action: action, Target: target, Result: result,
		Key: "/pgguard/c/history/" + node + string(action)}
}

func TestFindTellsAFailoverAcrossNodes(t *testing.T) {
	events := []dcs.Event{
		ev(0, "n1", ha.Initdb, "", "ok"),
		ev(500, "n1", ha.Promote, "", "ok in 10ms"), // an earlier episode
		ev(60000, "n2", ha.EventLeaderLost, "n1", "observed"),
		ev(60005, "n3", ha.EventLeaderLost, "n1", "observed"),
		ev(60100, "n2", ha.AcquireLeader, "", "ok in 2ms"),
		ev(60150, "n3", ha.Follow, "n2", "ok in 8ms"),
		ev(60200, "n2", ha.Promote, "", "ok in 100ms"),
		ev(75000, "n1", ha.CrashRecover, "", "ok in 90ms"),
		ev(75800, "n1", ha.Rewind, "n2", "ok in 700ms"),
	}
	ep, err := Find(events, "last")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Kind != "failover" || ep.From != "n1" || ep.To != "n2" {
		t.Fatalf("episode = %s %s→%s, want failover n1→n2", ep.Kind, ep.From, ep.To)
	}
	if len(ep.Events) != 7 || ep.Events[0].Action != ha.EventLeaderLost || ep.Events[len(ep.Events)-1].Action != ha.Rewind {
		t.Fatalf("episode events = %+v", ep.Events)
	}
	var b strings.Builder
	ep.Write(&b)
	for _, want := range []string{"failover n1 → n2", "+   0.000s  n2   " + string(ha.EventLeaderLost), string(ha.Rewind), "+  15.800s"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("timeline lacks %q:\n%s", want, b.String())
		}
	}
}

func TestFindTellsASwitchover(t *testing.T) {
	events := []dcs.Event{
		ev(0, "ctl", ha.EventSwitchoverRequest, "n3", "ok"),
		ev(100, "n1", ha.EventSwitchoverStop, "n3", "started"),
		ev(300, "n1", ha.HandOver, "n3", "ok in 200ms"),
		ev(350, "n3", ha.AcquireLeader, "", "ok"),
		ev(450, "n3", ha.Promote, "", "ok in 100ms"),
	}
	ep, err := Find(events, "")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Kind != "switchover" || ep.From != "n1" || ep.To != "n3" {
		t.Fatalf("episode = %s %s→%s, want switchover n1→n3", ep.Kind, ep.From, ep.To)
	}
}

func TestFindWithoutPromotionSaysSo(t *testing.T) {
	_, err := Find([]dcs.Event{ev(0, "n1", ha.Initdb, "", "ok")}, "")
	if err == nil || !strings.Contains(err.Error(), "no promotion") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Find(nil, "zzz"); err == nil || !strings.Contains(err.Error(), "zzz") {
		t.Fatalf("unknown id should be named, err = %v", err)
	}
}
