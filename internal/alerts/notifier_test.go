package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// startNotifier runs a notifier with one fake sink on a fake clock.
func startNotifier(t *testing.T, o Options, fail func(Message, int) error) (*Notifier, *fakeSink, *fakeClock, *testcluster.LockedBuffer) {
	t.Helper()
	clock := newFakeClock()
	sink := newFakeSink(clock, fail)
	logs := &testcluster.LockedBuffer{}
	o.Cluster, o.Node, o.Clock, o.Sinks = "main", "n2", clock, []Sink{sink}
	o.Log = slog.New(slog.NewTextHandler(logs, nil))
	if o.RepeatInterval == 0 {
		o.RepeatInterval = time.Hour
	}
	n := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n, sink, clock, logs
}

// waitStats polls the fake sink's counts until ok holds (a count moves
// just after the attempt the test saw).
func waitStats(t *testing.T, n *Notifier, ok func(SinkStats) bool) SinkStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := n.Stats().Sinks["fake"]
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(time.Millisecond)
	}
}

func failover(node string) Alert {
	return Alert{Kind: KindFailover, Severity: Critical, Subject: node, Summary: "failover: " + node + " is the new primary"}
}

func fence(node string) Alert {
	return Alert{Kind: KindFence, Severity: Critical, Subject: node, Summary: "fence: " + node}
}

func TestASendThatFailsIsRetriedWithBackoffUntilItGoesThrough(t *testing.T) {
	n, sink, clock, logs := startNotifier(t, Options{RetryFor: time.Hour}, func(_ Message, attempt int) error {
		if attempt < 4 {
			return fmt.Errorf("post to https://user:hunter2hunter2@alerts.example.com/x?token=abcdef123456: %w", errDown)
		}
		return nil
	})
	n.Raise(failover("n2"))
	sink.nextAttempt(t)
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		clock.waitForSleepers(t, 1)
		clock.Advance(wait - time.Millisecond)
		select {
		case m := <-sink.tried:
			t.Fatalf("retried %s before its backoff of %s", m.Key, wait)
		case <-time.After(20 * time.Millisecond):
		}
		clock.Advance(time.Millisecond)
		sink.nextAttempt(t)
	}
	got := sink.attemptTimes("failover/main/n2")
	want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
	if len(got) != len(want) {
		t.Fatalf("attempts at %v, want %d", got, len(want))
	}
	for i := range want {
		if got[i].Sub(t0) != want[i] {
			t.Errorf("attempt %d at +%s, want +%s", i+1, got[i].Sub(t0), want[i])
		}
	}
	st := waitStats(t, n, func(s SinkStats) bool { return s.Sent == 1 })
	if st.Sent != 1 || st.Failed != 3 || st.GivenUp != 0 {
		t.Errorf("stats %+v, want 1 sent after 3 failed attempts", st)
	}
	// The delivery is counted, then logged: wait for its line.
	out := logs.String()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out, "alert sent") && time.Now().Before(deadline); out = logs.String() {
		time.Sleep(time.Millisecond) // polling the log for the delivery's line
	}
	if !strings.Contains(out, "alert not sent: retrying") || !strings.Contains(out, "alert sent") {
		t.Errorf("the failures and the delivery are not logged:\n%s", out)
	}
	for _, secret := range []string{"hunter2hunter2", "abcdef123456"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log repeats a credential of the receiver's URL (%s):\n%s", secret, out)
		}
	}
}

func TestASendIsGivenUpAfterRetryForAndTheQueueMovesOn(t *testing.T) {
	n, sink, clock, logs := startNotifier(t, Options{RetryFor: 5 * time.Second}, func(m Message, _ int) error {
		if m.Kind == KindFailover {
			return errDown
		}
		return nil
	})
	n.Raise(failover("n2"))
	n.Raise(fence("n1"))
	sink.nextAttempt(t) // +0
	clock.waitForSleepers(t, 1)
	clock.Advance(time.Second)
	sink.nextAttempt(t) // +1s
	clock.waitForSleepers(t, 1)
	clock.Advance(2 * time.Second)
	sink.nextAttempt(t) // +3s; the next wait (4s) would end past 5s
	if m := sink.nextAttempt(t); m.Kind != KindFence {
		t.Fatalf("after giving up, the next attempt was %s, want the fence", m.Key)
	}
	if got := len(sink.attemptTimes("failover/main/n2")); got != 3 {
		t.Errorf("%d attempts, want 3 within retry_for", got)
	}
	st := waitStats(t, n, func(s SinkStats) bool { return s.Sent == 1 })
	if st.GivenUp != 1 || st.Sent != 1 || st.Failed != 3 {
		t.Errorf("stats %+v, want 1 given up, 1 sent, 3 failed attempts", st)
	}
	if !strings.Contains(logs.String(), "giving up after alerts.retry_for") {
		t.Errorf("giving up is not logged:\n%s", logs.String())
	}
}

func TestARefusedSendIsNotRetried(t *testing.T) {
	n, sink, _, _ := startNotifier(t, Options{}, func(m Message, _ int) error {
		if m.Kind == KindFailover {
			return Permanent(fmt.Errorf("answered 400 Bad Request"))
		}
		return nil
	})
	n.Raise(failover("n2"))
	n.Raise(fence("n1"))
	sink.nextAttempt(t)
	if m := sink.nextAttempt(t); m.Kind != KindFence {
		t.Fatalf("the refused message was retried (%s)", m.Key)
	}
	if st := waitStats(t, n, func(s SinkStats) bool { return s.Sent == 1 }); st.GivenUp != 1 || st.Failed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestTheSameAlertIsSentOncePerRepeatInterval(t *testing.T) {
	n, sink, clock, _ := startNotifier(t, Options{RepeatInterval: time.Hour}, nil)
	n.Raise(failover("n2"))
	n.Raise(failover("n2")) // the same key: held back
	n.Raise(fence("n1"))    // another: sent
	if a, b := sink.nextAttempt(t), sink.nextAttempt(t); a.Key != "failover/main/n2" || b.Key != "fence/main/n1" {
		t.Fatalf("sent %s then %s, want the failover once, then the fence", a.Key, b.Key)
	}
	clock.Advance(time.Hour)
	n.Raise(failover("n2"))
	if m := sink.nextAttempt(t); m.Key != "failover/main/n2" {
		t.Fatalf("after the repeat interval: %s", m.Key)
	}
	if s := n.Stats(); s.Suppressed != 1 || s.Raised != 4 {
		t.Errorf("stats %+v, want 4 raised, 1 suppressed", s)
	}
}

func TestADiskAlertIsSentAgainWhenWorseAndResolvedOnce(t *testing.T) {
	n, sink, _, _ := startNotifier(t, Options{}, nil)
	disk := func(sev Severity, resolved bool) Alert {
		return Alert{Kind: KindDiskLow, Severity: sev, Subject: "n1", Condition: true, Resolved: resolved, Summary: "disk"}
	}
	n.Raise(disk(Warning, false))
	n.Raise(disk(Warning, false))  // held back
	n.Raise(disk(Critical, false)) // worse: sent
	n.Raise(disk(Warning, false))  // better, not resolved: held back
	n.Raise(disk(Warning, true))   // resolved: sent
	n.Raise(disk(Warning, true))   // resolved again: held back
	n.Raise(disk(Warning, false))  // back: sent
	var got []string
	for range 4 {
		m := sink.nextAttempt(t)
		got = append(got, string(m.Severity)+" "+m.Status)
	}
	want := "warning firing, critical firing, warning resolved, warning firing"
	if strings.Join(got, ", ") != want {
		t.Fatalf("sent %s, want %s", strings.Join(got, ", "), want)
	}
}

func TestRaiseNeverBlocksEvenWhenNothingTakesAlerts(t *testing.T) {
	n := New(Options{Cluster: "main", Node: "n1"}) // not running
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			n.Raise(failover(fmt.Sprint("n", i)))
			n.Observe(t0, []Kind{KindSplit}, nil, true)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Raise blocked")
	}
	if got := n.Stats().Dropped; got != 2000-256 {
		t.Errorf("dropped %d, want %d (all but the intake's 256)", got, 2000-256)
	}
}

func TestAFullQueueDropsItsOldestMessage(t *testing.T) {
	n, sink, clock, _ := startNotifier(t, Options{QueueSize: 2, RetryFor: time.Hour}, func(m Message, attempt int) error {
		if m.Key == "failover/main/n0" && attempt == 1 {
			return errDown
		}
		return nil
	})
	n.Raise(failover("n0"))
	sink.nextAttempt(t)
	clock.waitForSleepers(t, 1) // n0 waits for its retry; the queue fills
	for _, node := range []string{"n1", "n2", "n3"} {
		n.Raise(failover(node))
	}
	waitStats(t, n, func(s SinkStats) bool { return s.Dropped == 1 })
	clock.Advance(time.Second)
	var got []string
	for range 3 {
		got = append(got, sink.nextAttempt(t).Key)
	}
	if strings.Join(got, " ") != "failover/main/n0 failover/main/n2 failover/main/n3" {
		t.Fatalf("sent %v, want n0's retry, then the two newest (n1 dropped)", got)
	}
	if d := n.Stats().Sinks["fake"].Dropped; d != 1 {
		t.Errorf("dropped %d, want 1", d)
	}
}

func TestConditionsAreSentOnlyByTheSenderAndResolved(t *testing.T) {
	n, sink, _, _ := startNotifier(t, Options{}, nil)
	split := Alert{Kind: KindSplit, Severity: Critical, Summary: "split: n1, n2 run as primary at once", For: 2 * time.Second}
	n.Observe(t0, []Kind{KindSplit}, []Alert{split}, true)
	n.Observe(t0.Add(2*time.Second), []Kind{KindSplit}, []Alert{split}, true)
	if m := sink.nextAttempt(t); m.Key != "split/main" || m.Status != Firing {
		t.Fatalf("sent %+v", m)
	}
	n.Observe(t0.Add(3*time.Second), []Kind{KindSplit}, nil, true)
	if m := sink.nextAttempt(t); m.Key != "split/main" || m.Status != Resolved || m.Summary != "resolved: split: n1, n2 run as primary at once" {
		t.Fatalf("sent %+v, want the resolution", m)
	}
	// Another member sends them now: what this one saw is forgotten.
	n.Observe(t0.Add(4*time.Second), []Kind{KindSplit}, []Alert{split}, true)
	n.Observe(t0.Add(5*time.Second), nil, nil, false)
	n.Observe(t0.Add(14*time.Second), []Kind{KindSplit}, []Alert{split}, true)
	n.Raise(fence("n1"))
	if m := sink.nextAttempt(t); m.Key != "fence/main/n1" {
		t.Fatalf("sent %s: a split this node had seen before it stopped being the sender counted its time across", m.Key)
	}
}
