package alerts

import (
	"testing"
	"time"
)

func TestDedup(t *testing.T) {
	type step struct {
		resolve bool
		key     string
		sev     Severity
		cond    bool
		at      time.Duration
		want    bool
	}
	fire := func(key string, sev Severity, at time.Duration, want bool) step {
		return step{key: key, sev: sev, at: at, want: want}
	}
	cond := func(key string, sev Severity, at time.Duration, want bool) step {
		return step{key: key, sev: sev, cond: true, at: at, want: want}
	}
	resolve := func(key string, at time.Duration, want bool) step {
		return step{resolve: true, key: key, at: at, want: want}
	}
	const w = time.Hour
	cases := []struct {
		name  string
		steps []step
	}{
		{"the same key within the window is sent once", []step{
			fire("failover/c/n2", Critical, 0, true), fire("failover/c/n2", Critical, time.Minute, false), fire("failover/c/n2", Critical, w-time.Second, false)}},
		{"the same key after the window is sent again", []step{
			fire("failover/c/n2", Critical, 0, true), fire("failover/c/n2", Critical, w, true), fire("failover/c/n2", Critical, w+time.Minute, false)}},
		{"another key is not held back", []step{
			fire("failover/c/n2", Critical, 0, true), fire("failover/c/n3", Critical, time.Second, true), fire("fence/c/n2", Critical, time.Second, true)}},
		{"a condition grown more severe within the window is sent", []step{
			cond("disk-low/c/n1", Warning, 0, true), cond("disk-low/c/n1", Critical, time.Minute, true), cond("disk-low/c/n1", Critical, 2*time.Minute, false)}},
		{"a condition grown less severe within the window is not", []step{
			cond("disk-low/c/n1", Critical, 0, true), cond("disk-low/c/n1", Warning, time.Minute, false)}},
		{"a condition that resolved and came back is sent at once", []step{
			cond("disk-low/c/n1", Warning, 0, true), resolve("disk-low/c/n1", time.Minute, true), cond("disk-low/c/n1", Warning, 2*time.Minute, true)}},
		{"a resolution is sent once, and only for a key that fired", []step{
			resolve("disk-low/c/n1", 0, false), cond("disk-low/c/n1", Warning, time.Minute, true),
			resolve("disk-low/c/n1", 2*time.Minute, true), resolve("disk-low/c/n1", 3*time.Minute, false)}},
		{"a condition firing longer than the window still gets its resolution", []step{
			cond("disk-low/c/n1", Warning, 0, true), fire("failover/c/n2", Critical, 3*w, true), resolve("disk-low/c/n1", 3*w, true)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDedup(w)
			for i, s := range tc.steps {
				var got bool
				if s.resolve {
					got = d.Resolve(s.key, t0.Add(s.at))
				} else {
					got = d.Fire(s.key, s.sev, s.cond, t0.Add(s.at))
				}
				if got != s.want {
					t.Fatalf("step %d (%+v): sent %v, want %v", i, s, got, s.want)
				}
			}
		})
	}
}

func TestDedupForgetsWhatNoLongerHoldsAnythingBack(t *testing.T) {
	d := NewDedup(time.Hour)
	d.Fire("failover/c/n2", Critical, false, t0)
	d.Fire("disk-low/c/n1", Warning, true, t0)
	d.Fire("disk-low/c/n3", Warning, true, t0)
	d.Resolve("disk-low/c/n3", t0)
	d.Fire("fence/c/n1", Critical, false, t0.Add(2*time.Hour))
	if _, ok := d.seen["failover/c/n2"]; ok {
		t.Errorf("a one-off event older than the window is still remembered")
	}
	if _, ok := d.seen["disk-low/c/n3"]; ok {
		t.Errorf("a resolution older than the window is still remembered")
	}
	if _, ok := d.seen["disk-low/c/n1"]; !ok {
		t.Errorf("a condition still firing was forgotten: its resolution would never be sent")
	}
}

func TestWatchHoldsConditionsForTheirTimeAndResolvesThem(t *testing.T) {
	w := newWatch("c")
	split := Alert{Kind: KindSplit, Severity: Critical, Summary: "split: n1, n2 run as primary at once", For: 6 * time.Second}
	age := Alert{Kind: KindBackupAge, Severity: Warning, Subject: "nightly", Summary: "backup too old"}
	both := []Kind{KindSplit, KindBackupAge}
	summaries := func(as []Alert) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Summary)
		}
		return out
	}
	if got := w.observe(t0, both, []Alert{split, age}); len(got) != 1 || got[0].Kind != KindBackupAge || !got[0].Condition {
		t.Fatalf("first check: %v, want only the backup age (the split must hold 6s first)", summaries(got))
	}
	if got := w.observe(t0.Add(5*time.Second), both, []Alert{split, age}); len(got) != 1 {
		t.Fatalf("after 5s: %v, want the split still held back", summaries(got))
	}
	if got := w.observe(t0.Add(6*time.Second), both, []Alert{split, age}); len(got) != 2 {
		t.Fatalf("after 6s: %v, want the split and the backup age", summaries(got))
	}
	// The jobs could not be read: the backup age stays as it is.
	if got := w.observe(t0.Add(10*time.Second), []Kind{KindSplit}, []Alert{split}); len(got) != 1 || got[0].Kind != KindSplit {
		t.Fatalf("a check of split only: %v", summaries(got))
	}
	got := w.observe(t0.Add(20*time.Second), both, nil)
	if len(got) != 2 || !got[0].Resolved || !got[1].Resolved || got[1].Summary != "resolved: split: n1, n2 run as primary at once" {
		t.Fatalf("both gone: %v, want two resolutions", summaries(got))
	}
	if got := w.observe(t0.Add(30*time.Second), both, nil); len(got) != 0 {
		t.Fatalf("resolved twice: %v", summaries(got))
	}
}

func TestWatchSendsNothingForAConditionThatPassedBeforeItsTime(t *testing.T) {
	w := newWatch("c")
	split := Alert{Kind: KindSplit, Severity: Critical, Summary: "split", For: 6 * time.Second}
	w.observe(t0, []Kind{KindSplit}, []Alert{split})
	if got := w.observe(t0.Add(3*time.Second), []Kind{KindSplit}, nil); len(got) != 0 {
		t.Fatalf("a split seen for 3s: %+v, want nothing (not even a resolution)", got)
	}
	if got := w.observe(t0.Add(4*time.Second), []Kind{KindSplit}, []Alert{split}); len(got) != 0 {
		t.Fatalf("a split back after it passed counts its time again: got %+v", got)
	}
}

func TestBackoffDoublesUpToItsMaximum(t *testing.T) {
	b := Backoff{}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}
	for i, w := range want {
		if got := b.Wait(i + 1); got != w {
			t.Errorf("wait before retry %d: %s, want %s", i+1, got, w)
		}
	}
	if got := (Backoff{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond}).Wait(3); got != 300*time.Millisecond {
		t.Errorf("capped wait: %s", got)
	}
}
