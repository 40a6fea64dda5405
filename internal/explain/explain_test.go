package explain

import (
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
)

var base = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func ev(ms int, node, action, target, result string) dcs.Event {
	return dcs.Event{Time: base.Add(time.Duration(ms) * time.Millisecond), Node: node, Action: action, Target: target, Result: result,
		Key: "/pgguard/c/history/" + node + action}
}

func TestFindTellsAFailoverAcrossNodes(t *testing.T) {
	events := []dcs.Event{
		ev(0, "n1", "initdb", "", "ok"),
		ev(500, "n1", "promote", "", "ok in 10ms"), // an earlier episode
		ev(60000, "n2", "leader-lost", "n1", "observed"),
		ev(60005, "n3", "leader-lost", "n1", "observed"),
		ev(60100, "n2", "acquire-leader", "", "ok in 2ms"),
		ev(60150, "n3", "follow", "n2", "ok in 8ms"),
		ev(60200, "n2", "promote", "", "ok in 100ms"),
		ev(75000, "n1", "crash-recover", "", "ok in 90ms"),
		ev(75800, "n1", "rewind", "n2", "ok in 700ms"),
	}
	ep, err := Find(events, "last")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Kind != "failover" || ep.From != "n1" || ep.To != "n2" {
		t.Fatalf("episode = %s %s→%s, want failover n1→n2", ep.Kind, ep.From, ep.To)
	}
	if len(ep.Events) != 7 || ep.Events[0].Action != "leader-lost" || ep.Events[len(ep.Events)-1].Action != "rewind" {
		t.Fatalf("episode events = %+v", ep.Events)
	}
	var b strings.Builder
	ep.Write(&b)
	for _, want := range []string{"failover n1 → n2", "+   0.000s  n2   leader-lost", "rewind", "+  15.800s"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("timeline lacks %q:\n%s", want, b.String())
		}
	}
}

func TestFindTellsASwitchover(t *testing.T) {
	events := []dcs.Event{
		ev(0, "ctl", "switchover-request", "n3", "ok"),
		ev(100, "n1", "switchover-stop", "n3", "started"),
		ev(300, "n1", "hand-over", "n3", "ok in 200ms"),
		ev(350, "n3", "acquire-leader", "", "ok"),
		ev(450, "n3", "promote", "", "ok in 100ms"),
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
	_, err := Find([]dcs.Event{ev(0, "n1", "initdb", "", "ok")}, "")
	if err == nil || !strings.Contains(err.Error(), "no promotion") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Find(nil, "zzz"); err == nil || !strings.Contains(err.Error(), "zzz") {
		t.Fatalf("unknown id should be named, err = %v", err)
	}
}
