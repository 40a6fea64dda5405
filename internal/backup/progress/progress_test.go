package progress

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestJSONWritesOneObjectPerEventWithRateAndETA(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	j := NewJSON(&buf, time.Second, clock)
	j.Start("backup full", 1000)
	now = now.Add(500 * time.Millisecond)
	j.Add(100) // within the interval: no line
	now = now.Add(1500 * time.Millisecond)
	j.Add(100) // 200 bytes in 2 s: 100 B/s, 800 left: ETA 8 s
	j.Event("bad-pages", map[string]any{"count": 1})
	now = now.Add(time.Second)
	j.Finish()

	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		events = append(events, m)
	}
	var names []string
	for _, e := range events {
		names = append(names, e["event"].(string))
	}
	if got := strings.Join(names, ","); got != "start,progress,bad-pages,finish" {
		t.Fatalf("events %s, want start,progress,bad-pages,finish (progress throttled to one per interval)", got)
	}
	p := events[1]
	if p["done_bytes"] != 200.0 || p["bytes_per_second"] != 100.0 || p["eta_seconds"] != 8.0 || p["phase"] != "backup full" {
		t.Errorf("progress line %v: want 200 bytes done at 100 B/s, ETA 8 s, phase named", p)
	}
	if events[3]["seconds"] != 3.0 {
		t.Errorf("finish line %v: want 3 seconds", events[3])
	}
}

func TestBarDrawsBytesAndCompletesWithoutHanging(t *testing.T) {
	var buf bytes.Buffer
	b := NewBar(&buf)
	b.Start("backup full", 3<<20)
	b.Add(1 << 20)
	b.Event("resume", map[string]any{"packs_reused": 2})
	b.Add(2 << 20)
	done := make(chan struct{})
	go func() { b.Finish(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Finish did not return within 10s")
	}
	out := buf.String()
	if !strings.Contains(out, "backup full") || !strings.Contains(out, "3.0 MiB / 3.0 MiB") || !strings.Contains(out, "packs_reused") {
		t.Errorf("bar output %q: want the phase, 3.0 MiB / 3.0 MiB and the event", out)
	}
}
