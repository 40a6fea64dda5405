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
	fb := FixedBugs[len(FixedBugs)-1] // the newest: a trial after it ran none of them
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
	if !strings.Contains(all, "| `etcd-quorum-lost` | async | 2 | 0 | – (records without send times) | 0 | 41.00 s / 53.00 s |") {
		t.Fatalf("main table should count both trials:\n%s", all)
	}
	if !strings.Contains(since, "| `etcd-quorum-lost` | async | 1 | 0 | – (records without send times) | 0 | 29.00 s / 29.00 s |") {
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
	// Check turns it into a problem and counts the routes; n1's id 2 and
	// n2's id 3 were in flight together, which the ack-overlap detector
	// reports as well.
	var r Result
	Check(Observation{Mode: "async", Acks: deposed, Stored: map[int64]bool{1: true, 2: true, 3: true, 4: true, 6: true}, Healthy: true}, &r)
	if r.StaleAcks["proxy"] != 1 || r.RoutedAcks["proxy"] != 3 || len(r.Problems) != 2 ||
		!strings.Contains(r.Problems[0], "split brain from the acknowledgements") || !strings.Contains(r.Problems[1], "no longer the primary") {
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
	if !strings.Contains(b.String(), "| `host-kill` | sync | 1 | unknown (no primary read after 1 of 1) |") {
		t.Fatalf("the report does not say the loss is unknown:\n%s", b.String())
	}
}

// Two servers took writes at once for 50 ms between two probe rounds: the
// rounds saw one writable node each, the acknowledgements show both
// (issue 17 item 2).
func TestAckOverlapsFindTheSplitBrainTheProbeRoundsMissed(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	ack := func(id int64, server string, tli int64, sent, at int) Ack {
		return Ack{ID: id, Server: server, TLI: tli, Sent: ms(sent), At: ms(at), Route: "direct", SysID: "7412"}
	}
	acks := []Ack{
		ack(1, "n1", 1, 0, 4), ack(2, "n1", 1, 20, 24),
		// n2 promoted at 100 while n1, frozen from 30 to 140, still
		// takes writes: both acknowledge between 140 and 150.
		ack(3, "n2", 2, 110, 114), ack(4, "n1", 1, 30, 143), ack(5, "n2", 2, 130, 134), ack(6, "n2", 2, 145, 148),
		ack(7, "n1", 1, 144, 149),
		ack(8, "n2", 2, 200, 204),
	}
	rounds := []Round{{Start: ms(0), End: ms(10), Writable: []string{"n1"}}, {Start: ms(100), End: ms(112), Writable: []string{"n2"}},
		{Start: ms(200), End: ms(210), Writable: []string{"n2"}}}
	stored := map[int64]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true}
	var r Result
	Check(Observation{Mode: "sync", FaultAt: ms(30), End: ms(300), Acks: acks, Rounds: rounds, Stored: stored, Healthy: true, HealthyAt: ms(250)}, &r)
	if r.SplitRounds != 0 {
		t.Fatalf("the rounds saw %d splits; the case is one they miss", r.SplitRounds)
	}
	// Id 7, sent after n2 acknowledged on timeline 2, is also a deposed
	// primary's write (StaleAcks).
	if !r.AckChecked || r.AckSplitWrites != 5 || len(r.Problems) != 2 || !strings.Contains(r.Problems[0], "split brain from the acknowledgements") {
		t.Fatalf("ack overlaps: checked %v, %d writes, problems %q", r.AckChecked, r.AckSplitWrites, r.Problems)
	}
	// Id 4's interval (30..143) holds ids 3 and 5 entirely (overlap), id
	// 7 (144..149) lies between n2's first acknowledgement and its last
	// send on timeline 2 (interleave): 4 + 4 + 5 ms.
	if got := r.AckSplitS; got < 0.0125 || got > 0.0135 {
		t.Errorf("split windows %.4fs, want 0.013s", got)
	}
	if !strings.Contains(r.AckSplitExample, "overlap: n1 acknowledged id 4") || !strings.Contains(r.AckSplitExample, "n2 id 3") {
		t.Errorf("example %q", r.AckSplitExample)
	}
}

func TestAckOverlapsLeaveACleanFailoverAlone(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	acks := []Ack{
		{ID: 1, Server: "n1", Sent: ms(0), At: ms(5)}, {ID: 2, Server: "n1", Sent: ms(2), At: ms(9)},
		// n1 is lost; a write sent to it never comes back. n2 takes over
		// three seconds later.
		{ID: 3, Server: "n2", Sent: ms(3000), At: ms(3004)}, {ID: 4, Server: "n2", Sent: ms(3001), At: ms(3010)},
		// n1, back as n2's standby and then promoted again by a
		// switchover, takes writes after n2's last.
		{ID: 5, Server: "n1", Sent: ms(5000), At: ms(5004)},
	}
	if got := AckOverlaps(acks); !got.Checked || got.Writes != 0 || got.Example != "" {
		t.Fatalf("clean failover: %+v", got)
	}
	// Records without send times are not judged.
	if got := AckOverlaps([]Ack{{ID: 1, Server: "n1", At: ms(1)}, {ID: 2, Server: "n2", At: ms(1)}}); got.Checked {
		t.Fatalf("old records judged: %+v", got)
	}
}

func TestIdentityProblems(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		acks []Ack
		want string
	}{
		{"one system identifier, never in recovery: nothing", []Ack{{ID: 1, Server: "n1", SysID: "7"}, {ID: 2, Server: "n2", SysID: "7"}}, ""},
		{"a write acknowledged in recovery is reported", []Ack{{ID: 1, Server: "n2", SysID: "7", InRecovery: true}}, "while pg_is_in_recovery() was true"},
		{"two system identifiers are two database clusters", []Ack{{ID: 1, Server: "n1", SysID: "7"}, {ID: 2, Server: "n3", SysID: "8"}}, "7 (n1), 8 (n3)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.acks {
				tc.acks[i].At = now
			}
			got := strings.Join(identityProblems(tc.acks), "\n")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadAcksReadsTheServersIdentity(t *testing.T) {
	dir := t.TempDir()
	data := "1 20 n3 1764763200500000000 2 1764763200400000000 direct 7412345678901234567 false\n"
	if err := os.WriteFile(filepath.Join(dir, "acks"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	acks, err := ReadAcks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 1 || acks[0].SysID != "7412345678901234567" || acks[0].InRecovery || acks[0].TLI != 2 || acks[0].Server != "n3" {
		t.Fatalf("ReadAcks: %+v", acks)
	}
}

// The note on trials that ran beside other chaos runs names the most
// runs beside any one of them, in the singular when that is one.
func TestBesideNoteCountsTheTrialsAndTheRunsBeside(t *testing.T) {
	for _, c := range []struct {
		beside []int
		want   string
	}{
		{[]int{0, 0}, ""},
		{[]int{1, 0, 1}, " 2 of them ran while another chaos run shared"},
		{[]int{1, 2, 0}, " 2 of them ran while up to 2 other chaos runs shared"},
	} {
		var rs []Result
		for _, n := range c.beside {
			rs = append(rs, Result{Beside: n})
		}
		got := besideNote(rs)
		if c.want == "" && got != "" || !strings.HasPrefix(got, c.want) {
			t.Errorf("beside %v: got %q, want it to start %q", c.beside, got, c.want)
		}
	}
}

// The main table holds only trials run as shipped on the current range of
// commits; the rest go under earlier code, with the commits they ran.
func TestReportMainTableIsTheCurrentCodeAsShipped(t *testing.T) {
	t0 := FixedBugs[len(FixedBugs)-1].FixedAt.Add(time.Hour) // after every fixed bug
	rs := []Result{
		{Fault: "host-kill", Mode: "sync", Started: t0, Code: "aaa", Shipped: true, Healthy: true, WriteGapS: 9},
		{Fault: "host-kill", Mode: "sync", Started: t0.Add(time.Hour), Code: "ccc-dirty", Shipped: true, Healthy: true, WriteGapS: 4},
		{Fault: "host-kill", Mode: "sync", Started: t0.Add(2 * time.Hour), Code: "ccc", Shipped: false, Healthy: true, WriteGapS: 2},
		{Fault: "host-kill", Mode: "sync", Started: t0.Add(3 * time.Hour), Code: "ddd", Shipped: true, Healthy: true, WriteGapS: 3, AckChecked: true, Beside: 2},
		// CI's short subset: outages halved, never in the main table.
		{Fault: "host-kill", Mode: "sync", Started: t0.Add(4 * time.Hour), Code: "eee", Shipped: true, OutageScale: 0.5, Healthy: true, WriteGapS: 1},
	}
	after := map[string]bool{"bbb": true, "ccc": true, "ddd": true, "eee": true}
	info := ReportInfo{Since: "bbb", Descends: func(code string) bool { return after[strings.TrimSuffix(code, "-dirty")] }}
	var b strings.Builder
	if err := WriteReport(&b, info, rs); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	main, earlier, ok := strings.Cut(doc, "## Trials on earlier code")
	if !ok || !strings.Contains(main, "## Trials on the current code") {
		t.Fatalf("no current and earlier sections:\n%s", doc)
	}
	if !strings.Contains(main, "`ccc-dirty` (1), `ddd` (1)") || !strings.Contains(main, "| `host-kill` | sync | 2 | 0 | 0 (of 1 trials checked) | 0 | 3.50 s / 4.00 s |") {
		t.Fatalf("main table should hold the shipped trials from bbb on:\n%s", main)
	}
	if !strings.Contains(main, "1 of them ran while up to 2 other chaos runs shared the machine's cores") {
		t.Fatalf("main table should say which trials ran beside other runs:\n%s", main)
	}
	earlier, scaled, ok := strings.Cut(earlier, "## Trials with shortened outages")
	if !ok || !strings.Contains(scaled, "| `host-kill` | sync | 1 | 0 |") {
		t.Fatalf("the trial with shortened outages should have its own section:\n%s", doc)
	}
	if !strings.Contains(earlier, "`aaa` (1), `ccc` (1)") || !strings.Contains(earlier, "| `host-kill` | sync | 2 | 0 |") {
		t.Fatalf("earlier code should hold the trial before bbb and the one without archiving:\n%s", earlier)
	}
	// Every trial in the main table (-code-since ""), but never one with
	// shortened outages.
	b.Reset()
	if err := WriteReport(&b, ReportInfo{}, rs); err != nil {
		t.Fatal(err)
	}
	main, scaled, ok = strings.Cut(b.String(), "## Trials with shortened outages")
	if !ok || !strings.Contains(main, "| `host-kill` | sync | 4 |") || !strings.Contains(scaled, "| `host-kill` | sync | 1 | 0 |") {
		t.Fatalf("with every trial in the main table, the one with shortened outages should still be apart:\n%s", b.String())
	}
}

// Writes of two servers that never overlap still show two primaries when
// one server's write lies between two of the other's on one timeline.
func TestAckOverlapsFindInterleavedPrimaries(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	acks := []Ack{
		{ID: 1, Server: "n1", TLI: 4, Sent: ms(0), At: ms(2)},
		{ID: 2, Server: "n2", TLI: 5, Sent: ms(10), At: ms(12)},
		{ID: 3, Server: "n1", TLI: 4, Sent: ms(20), At: ms(22)},
	}
	got := AckOverlaps(acks)
	if got.Writes != 1 || !strings.HasPrefix(got.Example, "interleave (n1 primary on timeline 4 from 12:00:00.002 to 12:00:00.020)") {
		t.Fatalf("interleaved: %+v", got)
	}
	// The same order with n1 back on a new timeline is a switchover and
	// a switchover back.
	acks[2].TLI = 6
	if got := AckOverlaps(acks); got.Writes != 0 {
		t.Fatalf("switchover and back reported: %+v", got)
	}
}

// Runs side by side get names and addresses of their own, and slot 0 keeps
// the ones the suite always had.
func TestSlotsHaveTheirOwnNamesAndSubnets(t *testing.T) {
	t.Cleanup(func() { _ = UseSlot(0) })
	if err := UseSlot(3); err != nil {
		t.Fatal(err)
	}
	if Prefix != "pgc3-" || Subnet != "10.200.3.0/24" || ClientAddr != "10.200.3.100" || VIPAddr != "10.200.3.50" || bridgeNS() != "pgc3-br" || lockPath(3) == lockPath(0) {
		t.Fatalf("slot 3: prefix %q subnet %q client %q vip %q bridge %q lock %q", Prefix, Subnet, ClientAddr, VIPAddr, bridgeNS(), lockPath(3))
	}
	if err := UseSlot(0); err != nil {
		t.Fatal(err)
	}
	if Prefix != "pgc-" || Subnet != "10.200.0.0/24" || ClientAddr != "10.200.0.100" || lockPath(0) != "/run/pgguard-chaos.lock" {
		t.Fatalf("slot 0: prefix %q subnet %q client %q lock %q", Prefix, Subnet, ClientAddr, lockPath(0))
	}
	if err := UseSlot(MaxSlot + 1); err == nil || !strings.Contains(err.Error(), "use 0 to 9") {
		t.Fatalf("slot %d: %v, want a refusal naming the range", MaxSlot+1, err)
	}
}
