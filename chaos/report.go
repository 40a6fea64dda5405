package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Cell is one row of the reliability table: a fault in a replication mode.
type Cell struct {
	Fault, Mode         string
	Trials              int
	Lost                int
	TrialsWithLoss      int
	MaxLostWindowS      float64 // latest lost acknowledgement after the fault
	SplitRounds         int
	Unhealthy           int
	Failed              int // trials with any problem
	GapMedian, GapMax   float64
	HealMedian, HealMax float64
	RepairMax           float64 // longest time to health after the repair
	LostUnknown         int     // trials whose final read failed
	// AckChecked counts the trials whose acknowledgements carried their
	// send time; AckSplitWrites adds up the writes in overlapping
	// acknowledgements of two servers (AckOverlaps), AckSplitTrials the
	// trials with any.
	AckChecked, AckSplitWrites, AckSplitTrials int
}

// Summarize groups results into cells, in the order of Faults() and then
// mode.
func Summarize(results []Result) []Cell {
	order := map[string]int{}
	for i, f := range Faults() {
		order[f.Name] = i
	}
	cells := map[[2]string]*Cell{}
	gaps := map[[2]string][]float64{}
	heals := map[[2]string][]float64{}
	for _, r := range results {
		k := [2]string{r.Fault, r.Mode}
		c := cells[k]
		if c == nil {
			c = &Cell{Fault: r.Fault, Mode: r.Mode}
			cells[k] = c
		}
		c.Trials++
		c.Lost += r.Lost
		if r.LostUnknown {
			c.LostUnknown++
		}
		if r.Lost > 0 {
			c.TrialsWithLoss++
			if r.LostLastS > c.MaxLostWindowS {
				c.MaxLostWindowS = r.LostLastS
			}
		}
		c.SplitRounds += r.SplitRounds
		if r.AckChecked {
			c.AckChecked++
			c.AckSplitWrites += r.AckSplitWrites
			if r.AckSplitWrites > 0 {
				c.AckSplitTrials++
			}
		}
		if !r.Healthy {
			c.Unhealthy++
		} else {
			heals[k] = append(heals[k], r.TimeToHealthS)
			if r.HealAfterRepairS > c.RepairMax {
				c.RepairMax = r.HealAfterRepairS
			}
		}
		if len(r.Problems) > 0 {
			c.Failed++
		}
		gaps[k] = append(gaps[k], r.WriteGapS)
	}
	var out []Cell
	for k, c := range cells {
		c.GapMedian, c.GapMax = medianMax(gaps[k])
		c.HealMedian, c.HealMax = medianMax(heals[k])
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Fault != out[j].Fault {
			return order[out[i].Fault] < order[out[j].Fault]
		}
		return out[i].Mode < out[j].Mode
	})
	return out
}

func medianMax(v []float64) (float64, float64) {
	if len(v) == 0 {
		return 0, 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m, s[len(s)-1]
}

// ReportInfo is the context printed above the table.
type ReportInfo struct {
	Command string
	Machine string
	Date    string
	// Notes is Markdown appended under "Findings" (chaos/FINDINGS.md):
	// what the figures mean, written by whoever read the failed trials.
	Notes string
	// Since is the first commit of the current safety-relevant code
	// (CurrentSince unless -code-since says otherwise), and Descends
	// tells whether a trial's commit is Since or comes after it (git
	// ancestry, handed in). The main table holds only the trials that ran
	// as shipped on such a commit. With Since empty, every trial counts
	// as current.
	Since    string
	Descends func(code string) bool
	// Results names the results file the report is made from, and
	// Regenerate the command that rewrites the report from it (defaults:
	// the main suite's chaos/results.jsonl and make chaos-report).
	Results, Regenerate string
}

func (info ReportInfo) results() string {
	if info.Results == "" {
		return "chaos/results.jsonl"
	}
	return info.Results
}

func (info ReportInfo) regenerate() string {
	if info.Regenerate == "" {
		return "make chaos-report"
	}
	return info.Regenerate
}

// CurrentSince is the first commit of the code the main table stands
// for: the cluster as shipped (WAL archived, default jobs), the
// acknowledgements carrying their server's identity, the final read on a
// verified primary (issue 17), short copies of switch segments completed
// and restore_command answered by the agent (4506958), and since ced3e1e
// timeline placeholders removed before every start (finding 20; see
// chaos/FINDINGS.md), and since ddcab22 a new primary kept in its
// interim sync key (finding 24) and, in sync modes, a standby that
// replayed past the new primary's fork rewound at once (finding 23).
// Move it forward when a change to the agent's safety-relevant code makes
// older trials stand for something else, and say why in
// chaos/FINDINGS.md.
var CurrentSince = "ddcab22df978"

// current reports whether a trial stands for the code of the main table.
func (info ReportInfo) current(r Result) bool {
	if _, ok := RanFixedBug(r); ok || r.OutageScale != 0 {
		return false
	}
	if info.Since == "" {
		return true
	}
	return r.Shipped && r.Code != "" && info.Descends != nil && info.Descends(r.Code)
}

// besideNote says how many trials ran while other chaos runs shared the
// machine (make chaos SLOT=k), and how many such runs at most.
func besideNote(results []Result) string {
	n, most := 0, 0
	for _, r := range results {
		if r.Beside > 0 {
			n++
			most = max(most, r.Beside)
		}
	}
	if n == 0 {
		return ""
	}
	others := "another chaos run"
	if most > 1 {
		others = fmt.Sprintf("up to %d other chaos runs", most)
	}
	return fmt.Sprintf(" %d of them ran while %s shared the machine's cores (`make chaos SLOT=k`), each with its own cluster and workload.", n, others)
}

// codeRange names the commits the trials ran, oldest first, with how many
// trials each.
func codeRange(results []Result) string {
	type seen struct {
		code   string
		first  time.Time
		trials int
	}
	byCode := map[string]*seen{}
	var list []*seen
	for _, r := range results {
		c := byCode[r.Code]
		if c == nil {
			c = &seen{code: r.Code, first: r.Started}
			byCode[r.Code] = c
			list = append(list, c)
		}
		if r.Started.Before(c.first) {
			c.first = r.Started
		}
		c.trials++
	}
	sort.Slice(list, func(i, j int) bool { return list[i].first.Before(list[j].first) })
	var parts []string
	for _, c := range list {
		if c.code == "" {
			parts = append(parts, fmt.Sprintf("no commit recorded (%d, before the field)", c.trials))
			continue
		}
		parts = append(parts, fmt.Sprintf("`%s` (%d)", c.code, c.trials))
	}
	return strings.Join(parts, ", ")
}

// WriteReport writes docs/RELIABILITY.md from every result.
func WriteReport(w io.Writer, info ReportInfo, results []Result) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, `# Reliability under failure

Generated by the chaos suite (`+"`chaos/`"+`) — do not edit by hand; rerun it.

Each node of a three-node cluster (agent, embedded etcd member, PostgreSQL 15)
runs in its own network namespace on a private bridge, as `+"`pgguard demo up`"+`
ships it: WAL archived into a backup repository by whichever node is primary,
and the demo's default jobs installed (a first full backup at once, a drill
three minutes later, the daily and hourly schedule). The workload runs in a
fourth namespace: three clients insert unique ids every 20 ms through the
multi-host connection string (`+"`target_session_attrs=read-write`"+`) and record every
acknowledged write with the identity of the server that committed it (node,
system identifier, timeline and `+"`pg_is_in_recovery()`"+`, read in the same
transaction) and the client's send and acknowledgement times; a probe asks every
node every 100 ms whether it can assign a transaction id. Each trial waits for full health (one primary, every other
node streaming, a synchronous standby named in sync mode), injects the fault
into the current cluster, runs the fault's schedule (hold, then repair: restart
the killed host, reconnect the link), waits for full health again (bound: 120 s
after the schedule; since finding 10, full health also needs every standby to
have replayed past the primary's position when the cluster first looked
healthy) and keeps writing for 3 s, then checks:

- **lost**: acknowledged writes missing from the final primary (must be 0 in
  sync mode; counted in async mode, with the latest such write's time after
  the fault as the window). The final read is of the leader the store names,
  and counts only if that server says it is out of recovery; a trial
  without such a read is "unknown", never "0 lost".
- **split brain from acknowledgements** (must be 0): a write's server was
  out of recovery and committing somewhere between the client's send and
  its acknowledgement. Two servers were primaries at once when the intervals
  of their writes overlap, or when one server's write lies wholly between
  two writes of the other on one timeline (a primary keeps its timeline
  until it is demoted). Resolution: it sees a double-primary window as soon
  as the two servers' writes overlap or interleave in it, however short
  (three clients write every 20 ms each); it misses a window in which one
  of the two acknowledged nothing, or in which the old primary's last
  acknowledgement came before the new primary's first write and none after
  it. An acknowledgement delayed on its way back (a link that returns) can
  make an old primary's write overlap the new primary's: that is reported
  too, as what the clients saw. Writes committed in recovery, or by servers
  of two system identifiers, are reported as well.
- **split-brain probe rounds** (must be 0): rounds in which two nodes
  assigned a transaction id. Rounds start every 100 ms, or right after a
  round that ran longer; each node gets 500 ms to connect and answer
  (`+"`-probe-timeout`"+`), apart from the interval, so a slowed primary still
  counts as writable. Resolution: a sample every 100 ms at best, stretched
  to 500 ms while a node hangs; a double-primary window shorter than the
  gap between two rounds can pass unseen.
- **write gap**: the longest time without any acknowledged write after the
  fault;
- **time to health**: from the fault to full health again (includes the
  fault's own hold time).

Reproduce (root, Debian bookworm): `+"`%s`"+`. Results accumulate in
`+"`%s`"+` (committed, each trial with the commit it ran) across
runs and machines until the file is removed; `+"`%s`"+` rewrites
this file from them; the trials column says how many ran. Each trial's
records (acks, probe rounds, ids on the final primary) and, for a failed
check, the history and log tails, stay under
`+"`/tmp/pgguard-chaos/<mode>-<time>/trials/`"+`.

Machine: %s. Run: %s.

Faults (each injected into the cluster as it is when the trial starts):

`, info.Command, info.results(), info.regenerate(), info.Machine, info.Date)
	for _, f := range Faults() {
		fmt.Fprintf(b, "- `%s`: %s\n", f.Name, f.Title)
	}
	results = reassess(results)
	var current, earlier, scaled []Result
	for _, r := range results {
		switch {
		case info.current(r):
			current = append(current, r)
		case r.OutageScale != 0:
			scaled = append(scaled, r)
		default:
			earlier = append(earlier, r)
		}
	}
	if info.Since != "" {
		fmt.Fprintf(b, "\n## Trials on the current code\n\n"+
			"Trials of the cluster as shipped on commit `%s` or later (`git log %s^..`)", info.Since, info.Since)
		if len(current) == 0 {
			b.WriteString(": none yet.\n")
		} else {
			fmt.Fprintf(b, "; the commits they ran, with their trials: %s.%s\n\n", codeRange(current), besideNote(current))
			writeTable(b, current)
		}
		writeEarlier(b, earlier, info.results())
	} else {
		b.WriteString("\n")
		writeTable(b, current)
		writeSinceImprovement(b, current)
		writeFixedBugs(b, earlier, info.results())
	}
	if len(scaled) > 0 {
		b.WriteString("\n## Trials with shortened outages\n\n" +
			"Run with `-outage-scale` (CI's short subset: 0.5), the network outages of 20 and\n" +
			"30 s scaled by it; never counted with the trials above.\n\n")
		writeTable(b, scaled)
	}
	var routed []Result
	for _, r := range results {
		if _, ok := RanFixedBug(r); !ok {
			routed = append(routed, r)
		}
	}
	writeRoutingTable(b, routed)
	var failing []Result
	for _, r := range results {
		if len(r.Problems) > 0 {
			failing = append(failing, r)
		}
	}
	if len(failing) > 0 {
		b.WriteString("\n## Trials that failed a check\n\n")
		for _, r := range failing {
			ran := ""
			if fb, ok := RanFixedBug(r); ok {
				ran = fmt.Sprintf(" (ran the bug of finding %s, fixed since)", fb.Finding)
			}
			fmt.Fprintf(b, "- `%s` %s, trial %d, seed %d, victim %s, started %s%s:\n", r.Fault, r.Mode, r.Trial, r.Seed, r.Victim, r.Started.UTC().Format("2006-01-02 15:04:05Z"), ran)
			for _, p := range r.Problems {
				if len(p) > 600 {
					p = p[:600] + " …"
				}
				fmt.Fprintf(b, "  - %s\n", strings.Join(strings.Fields(p), " "))
			}
		}
	}
	if strings.TrimSpace(info.Notes) != "" {
		b.WriteString("\n## Findings\n\n")
		b.WriteString(strings.TrimSpace(info.Notes) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeEarlier is the record of the trials on code before the current
// range (or not as shipped: without WAL archiving), as the report showed
// them before: all of them, those since the newest improvement, and those
// that ran a bug fixed since.
func writeEarlier(b *strings.Builder, earlier []Result, resultsName string) {
	if len(earlier) == 0 {
		return
	}
	var kept, buggy []Result
	for _, r := range earlier {
		if _, ok := RanFixedBug(r); ok {
			buggy = append(buggy, r)
		} else {
			kept = append(kept, r)
		}
	}
	b.WriteString("\n## Trials on earlier code\n\n" +
		"Trials before the current range, or of a cluster that archived no WAL (before the\n" +
		"suite ran the cluster as shipped, or with `-shipped=false`). They stay in\n" +
		"`" + resultsName + "`; the commits they ran: " + codeRange(kept) + ".\n\n")
	writeTable(b, kept)
	writeSinceImprovement(b, kept)
	writeFixedBugs(b, buggy, resultsName)
}

func writeSinceImprovement(b *strings.Builder, results []Result) {
	n := len(Improvements)
	if n == 0 {
		return
	}
	imp := Improvements[n-1]
	var since []Result
	for _, r := range results {
		if r.Started.After(imp.Since) {
			since = append(since, r)
		}
	}
	if len(since) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### Trials since the newest change\n\n"+
		"The table above counts every trial; this one only those started after %s,\n"+
		"when the newest of these changes took effect:\n\n", imp.Since.UTC().Format("2006-01-02 15:04Z"))
	for _, i := range Improvements {
		fmt.Fprintf(b, "- since %s (finding %s; %s): %s.\n", i.Since.UTC().Format("2006-01-02 15:04Z"), i.Finding, i.Commits, i.What)
	}
	b.WriteString("\n")
	writeTable(b, since)
}

func writeFixedBugs(b *strings.Builder, before []Result, resultsName string) {
	if len(before) == 0 {
		return
	}
	b.WriteString("\n### Trials that ran a bug fixed since\n\n")
	b.WriteString("The tables above leave these out: they ran code with a bug the suite found,\n" +
		"fixed in the commits named below (the finding explains it). They stay in\n" +
		"`" + resultsName + "`; this table keeps what they measured.\n\n")
	for _, fb := range FixedBugs {
		fmt.Fprintf(b, "- finding %s (%s mode trials started before %s; fixed in %s): %s.\n",
			fb.Finding, strings.Join(fb.Modes, " and "), fb.FixedAt.UTC().Format("2006-01-02 15:04Z"), fb.Commits, fb.What)
	}
	b.WriteString("\n")
	writeTable(b, before)
}

func writeTable(b *strings.Builder, results []Result) {
	b.WriteString(`| fault | mode | trials | lost acked writes (trials with loss; latest lost write after the fault) | split brain from acknowledgements: writes (trials) | split-brain probe rounds | write gap median / max | full health after the fault, median / max | … after the repair, max | trials failing a check |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
`)
	for _, c := range Summarize(results) {
		fmt.Fprintf(b, "| `%s` | %s | %d | %s | %s | %d | %.2f s / %.2f s | %s | %.1f s | %d |\n",
			c.Fault, c.Mode, c.Trials, lostCell(c), ackSplitCell(c), c.SplitRounds, c.GapMedian, c.GapMax, healCell(c), c.RepairMax, c.Failed)
	}
}

// lostCell never shows "0" for trials whose final read failed: their loss
// is unknown.
func lostCell(c Cell) string {
	if c.LostUnknown == c.Trials {
		return fmt.Sprintf("unknown (no primary read after %d of %d)", c.LostUnknown, c.Trials)
	}
	lost := fmt.Sprintf("%d", c.Lost)
	if c.Lost > 0 {
		lost = fmt.Sprintf("%d (%d; ≤ %.2f s)", c.Lost, c.TrialsWithLoss, c.MaxLostWindowS)
	}
	if c.LostUnknown > 0 {
		lost += fmt.Sprintf(" in %d trials read; unknown in %d (no primary read)", c.Trials-c.LostUnknown, c.LostUnknown)
	}
	return lost
}

func ackSplitCell(c Cell) string {
	switch {
	case c.AckChecked == 0:
		return "– (records without send times)"
	case c.AckSplitWrites == 0 && c.AckChecked == c.Trials:
		return "0"
	case c.AckSplitWrites == 0:
		return fmt.Sprintf("0 (of %d trials checked)", c.AckChecked)
	}
	return fmt.Sprintf("%d (%d)", c.AckSplitWrites, c.AckSplitTrials)
}

func healCell(c Cell) string {
	heal := fmt.Sprintf("%.1f s / %.1f s", c.HealMedian, c.HealMax)
	if c.Unhealthy > 0 {
		heal += fmt.Sprintf(" (%d never healthy)", c.Unhealthy)
	}
	return heal
}

// writeRoutingTable adds the checks of runs with the virtual IP or the
// built-in proxy (-vip, -proxy), when any result has them.
func writeRoutingTable(b *strings.Builder, results []Result) {
	type cell struct {
		trials, samples, double int
		routed, stale           map[string]int
		gaps                    map[string][]float64
	}
	cells := map[[2]string]*cell{}
	var keys [][2]string
	for _, r := range results {
		if r.VIPSamples == 0 && len(r.RoutedAcks) == 0 {
			continue
		}
		k := [2]string{r.Fault, r.Mode}
		c := cells[k]
		if c == nil {
			c = &cell{routed: map[string]int{}, stale: map[string]int{}, gaps: map[string][]float64{"direct": nil}}
			cells[k] = c
			keys = append(keys, k)
		}
		c.trials++
		c.samples += r.VIPSamples
		c.double += r.VIPDouble
		for route, n := range r.RoutedAcks {
			c.routed[route] += n
		}
		for route, n := range r.StaleAcks {
			c.stale[route] += n
		}
		c.gaps["direct"] = append(c.gaps["direct"], r.WriteGapS)
		for route, g := range r.RouteGapS {
			c.gaps[route] = append(c.gaps[route], g)
		}
	}
	if len(keys) == 0 {
		return
	}
	order := map[string]int{}
	for i, f := range Faults() {
		order[f.Name] = i
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return order[keys[i][0]] < order[keys[j][0]]
		}
		return keys[i][1] < keys[j][1]
	})
	b.WriteString(`
## Routing checks

Trials run with the virtual IP (` + "`-vip`" + `) and the agents' built-in proxy
(` + "`-proxy`" + `): one more writer writes through each (the proxy of any node,
` + "`target_session_attrs=any`" + `; the virtual IP), and every write records the node
and WAL timeline of the transaction that committed it. **VIP samples**: every
100 ms, which namespaces carry the address (two holders fail the trial).
**Writes by a deposed primary**: writes sent after a write on a newer timeline
had been acknowledged and yet committed on an older one, or two nodes
acknowledging on one timeline, found from the acknowledgements themselves, by
route (any fails the trial). **Write gap**: the longest pause after the fault
of all writers together (the main table's) and of the proxy's and the VIP's
writer alone, median / max.

| fault | mode | trials | VIP samples (with two holders) | writes through the proxy / VIP | writes by a deposed primary (direct / proxy / VIP) | write gap: all / proxy / VIP |
| --- | --- | --- | --- | --- | --- | --- |
`)
	for _, k := range keys {
		c := cells[k]
		gap := func(route string) string {
			if len(c.gaps[route]) == 0 {
				return "–"
			}
			m, x := medianMax(c.gaps[route])
			return fmt.Sprintf("%.2f / %.2f s", m, x)
		}
		fmt.Fprintf(b, "| `%s` | %s | %d | %d (%d) | %d / %d | %d / %d / %d | %s; %s; %s |\n", k[0], k[1], c.trials, c.samples, c.double,
			c.routed["proxy"], c.routed["vip"], c.stale["direct"], c.stale["proxy"], c.stale["vip"], gap("direct"), gap("proxy"), gap("vip"))
	}
}
