package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/status"
)

func TestCheck(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	acks := []Ack{{ID: 1, At: at(-100), Server: "a"}, {ID: 2, At: at(50), Server: "a"}, {ID: 3, At: at(3050), Server: "b"}, {ID: 4, At: at(3100), Server: "b"}}
	tests := []struct {
		name         string
		mode         string
		stored       []int64
		rounds       []Round
		healthy      bool
		wantLost     int
		wantSplit    int
		wantProblems []string
	}{
		{name: "sync, every ack stored, one writer per round, healthy: no problem", mode: "sync", stored: []int64{1, 2, 3, 4},
			rounds: []Round{{Start: at(0), End: at(10), Writable: []string{"n1"}}, {Start: at(100), End: at(110)}}, healthy: true},
		{name: "async loss is counted, not a problem", mode: "async", stored: []int64{1, 3, 4}, healthy: true, wantLost: 1},
		{name: "sync loss is a problem naming the lost write", mode: "sync", stored: []int64{1, 3, 4}, healthy: true, wantLost: 1,
			wantProblems: []string{"1 acknowledged writes missing from the final primary in sync mode (acknowledged 0.05s..0.05s after the fault, by a×1"}},
		{name: "two writable nodes in one round is split brain", mode: "async", stored: []int64{1, 2, 3, 4}, healthy: true,
			rounds: []Round{{Start: at(200), End: at(250), Writable: []string{"n1", "n2"}}}, wantSplit: 1,
			wantProblems: []string{"n1+n2 writable"}},
		{name: "never healthy again is a problem", mode: "async", stored: []int64{1, 2, 3, 4}, healthy: false,
			wantProblems: []string{"did not return to full health"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored := map[int64]bool{}
			for _, id := range tc.stored {
				stored[id] = true
			}
			var r Result
			Check(Observation{Mode: tc.mode, FaultAt: t0, End: at(4000), Acks: acks, Rounds: tc.rounds, Stored: stored,
				Healthy: tc.healthy, HealthyAt: at(2000), HealthNote: "x"}, &r)
			if r.Lost != tc.wantLost || r.SplitRounds != tc.wantSplit {
				t.Fatalf("lost %d split %d, want %d %d", r.Lost, r.SplitRounds, tc.wantLost, tc.wantSplit)
			}
			if len(r.Problems) != len(tc.wantProblems) {
				t.Fatalf("problems %q, want ones containing %q", r.Problems, tc.wantProblems)
			}
			all := strings.Join(r.Problems, "\n")
			for _, w := range tc.wantProblems {
				if !strings.Contains(all, w) {
					t.Errorf("problems %q lack %q", r.Problems, w)
				}
			}
			if got := r.WriteGapS; got < 2.99 || got > 3.01 {
				t.Errorf("write gap %.3fs, want 3s (from 50 ms to 3050 ms)", got)
			}
		})
	}
}

func TestWriteGapCountsSilenceUntilTheEnd(t *testing.T) {
	t0 := time.Now()
	acks := []Ack{{At: t0.Add(-time.Second)}, {At: t0.Add(time.Second)}}
	if got := WriteGap(acks, t0, t0.Add(10*time.Second)); got != 9*time.Second {
		t.Fatalf("gap %s, want 9s: no write after the last one until the end", got)
	}
}

func TestSummarizeMedianAndOrder(t *testing.T) {
	rs := []Result{
		{Fault: "link-flap", Mode: "async", WriteGapS: 1, Healthy: true, TimeToHealthS: 10},
		{Fault: "host-kill", Mode: "sync", WriteGapS: 1, Healthy: true, TimeToHealthS: 10},
		{Fault: "host-kill", Mode: "sync", WriteGapS: 3, Healthy: true, TimeToHealthS: 20, Lost: 2, LostLastS: 0.5, Problems: []string{"lost"}},
		{Fault: "host-kill", Mode: "sync", WriteGapS: 2, Healthy: false},
	}
	cells := Summarize(rs)
	if len(cells) != 2 || cells[0].Fault != "host-kill" || cells[1].Fault != "link-flap" {
		t.Fatalf("cells %+v: want host-kill before link-flap, as in Faults()", cells)
	}
	c := cells[0]
	if c.Trials != 3 || c.GapMedian != 2 || c.GapMax != 3 || c.HealMedian != 15 || c.Unhealthy != 1 || c.Lost != 2 || c.Failed != 1 {
		t.Fatalf("cell %+v", c)
	}
}

func TestReportLeavesTrialsOfAFixedBugOutOfTheMainTable(t *testing.T) {
	fb := FixedBugs[0]
	rs := []Result{
		{Fault: "double-kill", Mode: "sync", Started: fb.FixedAt.Add(-time.Minute), Lost: 12, LostLastS: 0.4, Healthy: true},
		{Fault: "double-kill", Mode: "sync", Started: fb.FixedAt.Add(time.Minute), Healthy: true},
		{Fault: "double-kill", Mode: "async", Started: fb.FixedAt.Add(-time.Minute), Lost: 3, Healthy: true},
	}
	if _, ok := RanFixedBug(rs[2]); ok {
		t.Fatalf("an async trial counted as running finding %s's bug, which was sync only", fb.Finding)
	}
	var b strings.Builder
	if err := WriteReport(&b, ReportInfo{}, rs); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	main, earlier, ok := strings.Cut(doc, "## Trials that ran a bug fixed since")
	if !ok {
		t.Fatalf("no table of the earlier trials in:\n%s", doc)
	}
	if !strings.Contains(main, "| `double-kill` | sync | 1 | 0 |") || !strings.Contains(main, "| `double-kill` | async | 1 | 3 (") {
		t.Fatalf("main table should count the fixed sync trial (0 lost) and the async one:\n%s", main)
	}
	if !strings.Contains(earlier, "| `double-kill` | sync | 1 | 12 (1; ≤ 0.40 s)") {
		t.Fatalf("earlier table should hold the trial that ran the bug:\n%s", earlier)
	}
}

func TestReportShowsTheTrialsSinceTheNewestChange(t *testing.T) {
	imp := Improvements[len(Improvements)-1]
	rs := []Result{
		{Fault: "etcd-quorum-lost", Mode: "async", Started: imp.Since.Add(-time.Minute), WriteGapS: 53, Healthy: true},
		{Fault: "etcd-quorum-lost", Mode: "async", Started: imp.Since.Add(time.Minute), WriteGapS: 29, Healthy: true},
	}
	var b strings.Builder
	if err := WriteReport(&b, ReportInfo{}, rs); err != nil {
		t.Fatal(err)
	}
	all, since, ok := strings.Cut(b.String(), "## Trials since the newest change")
	if !ok {
		t.Fatalf("no table of the trials since the change in:\n%s", b.String())
	}
	if !strings.Contains(all, "| `etcd-quorum-lost` | async | 2 | 0 | 0 | 41.00 s / 53.00 s |") {
		t.Fatalf("main table should count both trials:\n%s", all)
	}
	if !strings.Contains(since, "| `etcd-quorum-lost` | async | 1 | 0 | 0 | 29.00 s / 29.00 s |") {
		t.Fatalf("table since the change should hold only the later trial:\n%s", since)
	}
}

func TestCaughtUpWaitsForEveryStandbyToReplayPastTheMark(t *testing.T) {
	report := func(wal, r2, r3 string) status.Report {
		return status.Report{Leader: "n1", Members: []status.Member{
			{Name: "n1", WalLSN: wal}, {Name: "n2", ReplayedLSN: r2}, {Name: "n3", ReplayedLSN: r3}}}
	}
	cond := (&Cluster{}).CaughtUp(func(status.Report) bool { return true })
	if cond(report("0/5000000", "0/5000000", "0/4002000")) {
		t.Fatal("caught up with n3 replaying 0/4002000, behind the primary's 0/5000000")
	}
	// n3 streams but replays nothing; the primary moves on: still behind
	// the first mark.
	if cond(report("0/5100000", "0/5100000", "0/4002000")) {
		t.Fatal("caught up with n3 stuck at 0/4002000")
	}
	if !cond(report("0/5200000", "0/5100000", "0/5000000")) {
		t.Fatal("not caught up although both standbys replayed past the first mark 0/5000000")
	}
}

func TestStaleAcksFromTheAcknowledgementsAlone(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	ack := func(id int64, server string, tli int64, sent, at int, route string) Ack {
		return Ack{ID: id, Server: server, TLI: tli, Sent: ms(sent), At: ms(at), Route: route}
	}
	// A clean failover: n1 on timeline 1, then n2 on 2; n1's last write was
	// sent before n2's first acknowledgement (its ack may even come later).
	clean := []Ack{
		ack(1, "n1", 1, 0, 5, "direct"),
		ack(2, "n1", 1, 90, 130, "proxy"),
		ack(3, "n2", 2, 100, 120, "direct"),
		ack(4, "n2", 2, 200, 205, "proxy"),
		// An old record without a timeline is never judged.
		{ID: 5, Server: "10.200.0.11", At: ms(300)},
	}
	if stale, ex := StaleAcks(clean); len(stale) != 0 || ex != "" {
		t.Fatalf("clean failover reported stale: %v, %q", stale, ex)
	}
	// n1 still acknowledges a write sent after n2 acknowledged on
	// timeline 2: a deposed primary took a write.
	deposed := append(clean[:4:4], ack(6, "n1", 1, 150, 160, "proxy"))
	stale, ex := StaleAcks(deposed)
	if len(stale) != 1 || stale[0].ID != 6 || !strings.Contains(ex, "id 6 (proxy) committed by n1 on timeline 1") {
		t.Fatalf("deposed primary's write: got %v, %q", stale, ex)
	}
	// Two servers on the same timeline are two primaries, whatever the
	// times.
	twin := []Ack{ack(1, "n1", 3, 0, 5, "direct"), ack(2, "n3", 3, 10, 15, "vip")}
	if _, ex := StaleAcks(twin); !strings.Contains(ex, "n1 and n3 both acknowledged writes on timeline 3") {
		t.Fatalf("two servers on one timeline: %q", ex)
	}
	// Check turns it into a problem and counts the routes.
	var r Result
	Check(Observation{Mode: "async", Acks: deposed, Stored: map[int64]bool{1: true, 2: true, 3: true, 4: true, 6: true}, Healthy: true}, &r)
	if r.StaleAcks["proxy"] != 1 || r.RoutedAcks["proxy"] != 3 || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "no longer the primary") {
		t.Fatalf("Check: stale %v routed %v problems %v", r.StaleAcks, r.RoutedAcks, r.Problems)
	}
}

func TestReadAcksReadsBothRecordFormats(t *testing.T) {
	dir := t.TempDir()
	data := "0 17 10.200.0.11 1764763200000000000\n" +
		"3 18 n2 1764763200500000000 1A 1764763200400000000 proxy\n" +
		"3 19 n2 17647632005" // torn last line
	if err := os.WriteFile(filepath.Join(dir, "acks"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	acks, err := ReadAcks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 2 || acks[0].Route != "direct" || acks[0].TLI != 0 ||
		acks[1].TLI != 26 || acks[1].Route != "proxy" || acks[1].Sent.UnixNano() != 1764763200400000000 {
		t.Fatalf("ReadAcks: %+v", acks)
	}
}

func TestReportHasARoutingTableOnlyForRoutedRuns(t *testing.T) {
	plain := Result{Fault: "host-kill", Mode: "async", Healthy: true, WriteGapS: 3}
	routed := Result{Fault: "host-kill", Mode: "async", Healthy: true, WriteGapS: 3.2, VIPSamples: 150, VIPDouble: 1,
		RoutedAcks: map[string]int{"proxy": 500, "vip": 480}, StaleAcks: map[string]int{"proxy": 2},
		RouteGapS: map[string]float64{"proxy": 3.4, "vip": 3.5}}
	var b strings.Builder
	if err := WriteReport(&b, ReportInfo{}, []Result{plain}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "## Routing checks") {
		t.Fatalf("routing table without a routed trial:\n%s", b.String())
	}
	b.Reset()
	if err := WriteReport(&b, ReportInfo{}, []Result{plain, routed}); err != nil {
		t.Fatal(err)
	}
	want := "| `host-kill` | async | 1 | 150 (1) | 500 / 480 | 0 / 2 / 0 | 3.20 / 3.20 s; 3.40 / 3.40 s; 3.50 / 3.50 s |"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("routing table lacks %q:\n%s", want, b.String())
	}
}

// A trial whose final read failed is "unknown", never "0 lost" (issue 17
// item 3).
func TestFailedFinalReadIsUnknownNotZeroLost(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	var r Result
	Check(Observation{Mode: "sync", FaultAt: t0, End: t0.Add(time.Second), Healthy: true, HealthyAt: t0.Add(time.Second),
		Acks: []Ack{{ID: 1, At: t0.Add(-time.Second)}, {ID: 2, At: t0.Add(500 * time.Millisecond)}}}, &r)
	if !r.LostUnknown || r.Lost != 0 || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "unknown") {
		t.Fatalf("failed final read: %+v", r)
	}
	var b strings.Builder
	r.Fault, r.Mode, r.Started = "host-kill", "sync", t0
	if err := WriteReport(&b, ReportInfo{}, []Result{r}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| `host-kill` | sync | 1 | 0, unknown in 1 |") {
		t.Fatalf("the report does not say the loss is unknown:\n%s", b.String())
	}
}
