package chaos

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Result is what the checker concluded about one trial; one JSON line of
// the results file.
type Result struct {
	Fault   string    `json:"fault"`
	Mode    string    `json:"mode"`
	Trial   int       `json:"trial"`
	Seed    int64     `json:"seed"`
	Victim  string    `json:"victim"`
	Started time.Time `json:"started"`
	// Code is the commit the trial's binaries were built from ("-dirty"
	// when the tree had changes); empty in records older than the field.
	Code  string `json:"code,omitempty"`
	Acked int    `json:"acked"`
	// Lost acknowledged writes missing from the final primary, and when
	// they were acknowledged relative to the fault (seconds).
	Lost int `json:"lost"`
	// LostUnknown: no primary could be read after the trial, so what was
	// lost is not known (Lost is then 0 and means nothing).
	LostUnknown  bool    `json:"lost_unknown,omitempty"`
	LostFirstS   float64 `json:"lost_first_s,omitempty"`
	LostLastS    float64 `json:"lost_last_s,omitempty"`
	LostExamples []int64 `json:"lost_examples,omitempty"`
	SplitRounds  int     `json:"split_rounds"`
	SplitExample string  `json:"split_example,omitempty"`
	// AckChecked: the acknowledgements carried the send time, so the
	// ack-overlap detector ran (AckOverlaps). AckSplitWrites counts the
	// acknowledged writes whose send-to-acknowledge interval overlapped one
	// of another server; AckSplitS is how long those overlaps lasted in
	// all; AckSplitExample describes the first.
	AckChecked      bool    `json:"ack_checked,omitempty"`
	AckSplitWrites  int     `json:"ack_split_writes,omitempty"`
	AckSplitS       float64 `json:"ack_split_s,omitempty"`
	AckSplitExample string  `json:"ack_split_example,omitempty"`
	// Shipped: the cluster ran as `pgguard demo up` ships it, archiving
	// WAL into a backup repository with the demo's default jobs
	// installed (false in records older than the field: those clusters
	// archived nothing).
	Shipped bool `json:"shipped,omitempty"`
	// OutageScale is the scale of the network outages (-outage-scale)
	// when it was not 1 (CI's short subset): such trials never count in
	// the report's main table.
	OutageScale float64 `json:"outage_scale,omitempty"`
	// Beside counts the chaos runs of other slots going on when the trial
	// started (-slot): their clusters' load shared the machine's cores.
	Beside        int     `json:"beside,omitempty"`
	ProbeRounds   int     `json:"probe_rounds"`
	WriteGapS     float64 `json:"write_gap_s"`
	Healthy       bool    `json:"healthy"`
	TimeToHealthS float64 `json:"time_to_health_s"`
	// HealAfterRepairS counts from the end of the fault's schedule (the
	// restarted host, the reconnected link).
	HealAfterRepairS float64 `json:"heal_after_repair_s"`
	FinalPrimary     string  `json:"final_primary"`
	// PrimaryDisturbed counts fences, stops and restarts of the primary
	// in a fault that spares it (standby-kill).
	PrimaryDisturbed int `json:"primary_disturbed,omitempty"`
	// Problems are violations of the properties the suite asserts.
	Problems []string `json:"problems,omitempty"`
	// VIPSamples counts the 100 ms samples of which nodes hold the
	// virtual IP (with -vip), VIPDouble those that saw two or more.
	VIPSamples       int    `json:"vip_samples,omitempty"`
	VIPDouble        int    `json:"vip_double,omitempty"`
	VIPDoubleExample string `json:"vip_double_example,omitempty"`
	// RoutedAcks counts the acknowledged writes of each route other than
	// the multi-host string ("proxy", "vip").
	RoutedAcks map[string]int `json:"routed_acks,omitempty"`
	// StaleAcks counts writes a deposed primary acknowledged (see
	// StaleAcks), by route; StaleExample describes the first.
	StaleAcks    map[string]int `json:"stale_acks,omitempty"`
	StaleExample string         `json:"stale_example,omitempty"`
	// RouteGapS is the longest write gap after the fault of the writers
	// of each route other than the multi-host string.
	RouteGapS map[string]float64 `json:"route_gap_s,omitempty"`
}

// Observation is everything a trial recorded, for Check.
type Observation struct {
	Mode       string
	FaultAt    time.Time // when the fault was injected
	RepairedAt time.Time // when the fault's schedule ended
	End        time.Time // when the workload stopped
	Acks       []Ack
	Rounds     []Round
	Stored     map[int64]bool // ids on the final primary
	Healthy    bool
	HealthyAt  time.Time
	HealthNote string // what was last seen when not healthy
}

// Check applies the four properties to one trial's observation and fills
// r's measurements and problems:
//
//	(a) in a synchronous mode no acknowledged write is missing from the
//	    final primary (in async mode the loss is counted, not failed);
//	(b) no probe round saw two writable nodes;
//	(c) the cluster came back to full health within the bound;
//	(d) the longest pause between acknowledged writes (measured only).
func Check(o Observation, r *Result) {
	r.Acked = len(o.Acks)
	var lost []Ack
	if o.Stored == nil {
		r.LostUnknown = true
		r.Problems = append(r.Problems, "no primary out of recovery could be read after the trial: lost writes unknown")
	}
	for _, a := range o.Acks {
		if o.Stored == nil {
			break
		}
		if !o.Stored[a.ID] {
			lost = append(lost, a)
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].At.Before(lost[j].At) })
	r.Lost = len(lost)
	if len(lost) > 0 {
		r.LostFirstS = lost[0].At.Sub(o.FaultAt).Seconds()
		r.LostLastS = lost[len(lost)-1].At.Sub(o.FaultAt).Seconds()
		for i := 0; i < len(lost) && i < 5; i++ {
			r.LostExamples = append(r.LostExamples, lost[i].ID)
		}
		if o.Mode != "async" {
			r.Problems = append(r.Problems, fmt.Sprintf("%d acknowledged writes missing from the final primary in %s mode (acknowledged %.2fs..%.2fs after the fault, by %s; ids %v)",
				len(lost), o.Mode, r.LostFirstS, r.LostLastS, servers(lost), r.LostExamples))
		}
	}
	r.ProbeRounds = len(o.Rounds)
	for _, rd := range o.Rounds {
		if len(rd.Writable) > 1 {
			if r.SplitRounds == 0 {
				r.SplitExample = fmt.Sprintf("%s writable in the round %.2fs..%.2fs after the fault",
					strings.Join(rd.Writable, "+"), rd.Start.Sub(o.FaultAt).Seconds(), rd.End.Sub(o.FaultAt).Seconds())
			}
			r.SplitRounds++
		}
	}
	if r.SplitRounds > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d probe rounds with two writable nodes; first: %s", r.SplitRounds, r.SplitExample))
	}
	if split := AckOverlaps(o.Acks); split.Checked {
		r.AckChecked = true
		r.AckSplitWrites, r.AckSplitS, r.AckSplitExample = split.Writes, split.Span.Seconds(), split.Example
		if split.Writes > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("split brain from the acknowledgements: %d writes of two servers overlap or interleave (windows of %.3fs in all); first: %s",
				split.Writes, r.AckSplitS, split.Example))
		}
	}
	r.Problems = append(r.Problems, identityProblems(o.Acks)...)
	r.Healthy = o.Healthy
	if o.Healthy {
		r.TimeToHealthS = o.HealthyAt.Sub(o.FaultAt).Seconds()
		r.HealAfterRepairS = o.HealthyAt.Sub(o.RepairedAt).Seconds()
	} else {
		r.Problems = append(r.Problems, "cluster did not return to full health: "+o.HealthNote)
	}
	r.WriteGapS = WriteGap(o.Acks, o.FaultAt, o.End).Seconds()
	for _, a := range o.Acks {
		if a.Route != "" && a.Route != "direct" {
			if r.RoutedAcks == nil {
				r.RoutedAcks = map[string]int{}
			}
			r.RoutedAcks[a.Route]++
		}
	}
	byRoute := map[string][]Ack{}
	for _, a := range o.Acks {
		if a.Route != "" && a.Route != "direct" {
			byRoute[a.Route] = append(byRoute[a.Route], a)
		}
	}
	for route, acks := range byRoute {
		if r.RouteGapS == nil {
			r.RouteGapS = map[string]float64{}
		}
		r.RouteGapS[route] = WriteGap(acks, o.FaultAt, o.End).Seconds()
	}
	stale, example := StaleAcks(o.Acks)
	for _, a := range stale {
		if r.StaleAcks == nil {
			r.StaleAcks = map[string]int{}
		}
		r.StaleAcks[a.Route]++
	}
	if example != "" {
		r.StaleExample = example
		r.Problems = append(r.Problems, fmt.Sprintf("%d writes acknowledged by a server that was no longer the primary (by route: %v); first: %s",
			len(stale), r.StaleAcks, example))
	}
}

// AckSplit is what AckOverlaps found.
type AckSplit struct {
	// Checked: some acknowledgements carried their send time (records
	// older than the field do not).
	Checked bool
	// Writes counts the acknowledged writes found in a split (see
	// AckOverlaps); Span is the union of the windows they show.
	Writes  int
	Span    time.Duration
	Example string
}

// AckOverlaps detects a split brain from the acknowledgements alone,
// whatever any sampling saw. A write's server was out of recovery and
// committing at some instant between the client's send and its
// acknowledgement, its interval. Two servers (node or system identifier)
// were primaries at once when:
//
//   - overlap: the intervals of writes of two servers overlap (both may
//     have been taking writes at once; an acknowledgement delayed on its
//     way back, by a link that returns, can make an old primary's write
//     done before the promotion overlap the new primary's, and that is
//     reported too, as what the clients saw);
//   - interleave: a server's write lies wholly between two writes of
//     another server on one timeline, after the first's acknowledgement
//     and before the second's send. A server stays on its timeline while
//     it is primary (a restart in place keeps it, a promotion takes a new
//     one), so it was primary across that span.
//
// A double-primary window in which one of the servers acknowledged no
// write, or whose writes neither overlap nor interleave (the old primary's
// last acknowledgement before the new primary's first write, and none
// after), goes unseen.
func AckOverlaps(acks []Ack) AckSplit {
	var out AckSplit
	byStart := make([]Ack, 0, len(acks))
	for _, a := range acks {
		if !a.Sent.IsZero() {
			byStart = append(byStart, a)
		}
	}
	if len(byStart) == 0 {
		return out
	}
	out.Checked = true
	sort.Slice(byStart, func(i, j int) bool { return byStart[i].Sent.Before(byStart[j].Sent) })
	involved := map[int64]bool{}
	type window struct{ from, to time.Time }
	var windows []window
	// found records a window in which a and b show two primaries; the
	// writes counted are b and, for an overlap, a too.
	found := func(from, to time.Time, a, b Ack, how string) {
		windows = append(windows, window{from, to})
		involved[b.ID] = true
		if how == "overlap" {
			involved[a.ID] = true
		}
		if out.Example == "" {
			out.Example = fmt.Sprintf("%s: %s acknowledged id %d (sent %s, acknowledged %s, timeline %d) and %s id %d (sent %s, acknowledged %s, timeline %d)",
				how, a.Server, a.ID, clock(a.Sent), clock(a.At), a.TLI, b.Server, b.ID, clock(b.Sent), clock(b.At), b.TLI)
		}
	}
	// Overlap. latest[server]: of the writes sent so far to that server,
	// the one acknowledged last.
	latest := map[string]Ack{}
	for _, a := range byStart {
		id := serverID(a)
		for s, b := range latest {
			if s == id || b.At.Before(a.Sent) {
				continue
			}
			// b was sent no later than a and acknowledged after a was
			// sent: both intervals hold [a.Sent, min(a.At, b.At)].
			to := a.At
			if b.At.Before(to) {
				to = b.At
			}
			found(a.Sent, to, b, a, "overlap")
		}
		if b, ok := latest[id]; !ok || a.At.After(b.At) {
			latest[id] = a
		}
	}
	// Interleave. A server's span on a timeline runs from its earliest
	// acknowledgement to its latest send.
	type reign struct{ first, last Ack }
	reigns := map[string]*reign{}
	for _, a := range byStart {
		if a.TLI == 0 {
			continue
		}
		k := serverID(a) + "@" + strconv.FormatInt(a.TLI, 16)
		r := reigns[k]
		if r == nil {
			reigns[k] = &reign{a, a}
			continue
		}
		if a.At.Before(r.first.At) {
			r.first = a
		}
		if a.Sent.After(r.last.Sent) {
			r.last = a
		}
	}
	for _, r := range reigns {
		if !r.first.At.Before(r.last.Sent) {
			continue
		}
		id := serverID(r.first)
		for _, b := range byStart {
			if serverID(b) != id && b.Sent.After(r.first.At) && b.At.Before(r.last.Sent) {
				found(b.Sent, b.At, r.first, b, fmt.Sprintf("interleave (%s primary on timeline %d from %s to %s)", r.first.Server, r.first.TLI, clock(r.first.At), clock(r.last.Sent)))
			}
		}
	}
	out.Writes = len(involved)
	sort.Slice(windows, func(i, j int) bool { return windows[i].from.Before(windows[j].from) })
	var end time.Time
	for _, w := range windows {
		if w.from.After(end) {
			out.Span += w.to.Sub(w.from)
			end = w.to
		} else if w.to.After(end) {
			out.Span += w.to.Sub(end)
			end = w.to
		}
	}
	return out
}

// serverID names the server that committed a write: its node, and its
// system identifier where the record has it (two servers of one name
// with different identifiers are two servers).
func serverID(a Ack) string { return a.Server + "/" + a.SysID }

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// identityProblems are acknowledgements no healthy cluster gives: a write
// committed by a server in recovery, or writes committed by servers of
// different system identifiers (two database clusters, not one).
func identityProblems(acks []Ack) []string {
	var out []string
	sysids := map[string]string{}
	for _, a := range acks {
		if a.InRecovery {
			out = append(out, fmt.Sprintf("id %d acknowledged by %s while pg_is_in_recovery() was true in its own transaction", a.ID, a.Server))
			break
		}
	}
	for _, a := range acks {
		if a.SysID != "" {
			sysids[a.SysID] = a.Server
		}
	}
	if len(sysids) > 1 {
		var parts []string
		for id, server := range sysids {
			parts = append(parts, id+" ("+server+")")
		}
		sort.Strings(parts)
		out = append(out, "writes acknowledged by servers of different system identifiers: "+strings.Join(parts, ", "))
	}
	return out
}

// StaleAcks finds the writes a deposed primary acknowledged, from the
// acknowledgements alone (no sampling): a write that was sent after a write
// on a newer timeline had been acknowledged, and yet committed on an older
// timeline, was committed by a server that had lost the leader key (a
// primary promotes to a new timeline only with the key, and only one
// member holds it). Two servers acknowledging on the same timeline are two
// primaries as well. Only records that carry the timeline count. The
// example describes the first finding.
func StaleAcks(acks []Ack) ([]Ack, string) {
	byAck := make([]Ack, 0, len(acks))
	for _, a := range acks {
		if a.TLI > 0 && !a.Sent.IsZero() {
			byAck = append(byAck, a)
		}
	}
	sort.Slice(byAck, func(i, j int) bool { return byAck[i].At.Before(byAck[j].At) })
	// newest[i]: the ack with the greatest timeline among byAck[:i+1].
	newest := make([]int, len(byAck))
	for i := range byAck {
		newest[i] = i
		if i > 0 && byAck[newest[i-1]].TLI >= byAck[i].TLI {
			newest[i] = newest[i-1]
		}
	}
	var stale []Ack
	example := ""
	owner := map[int64]string{}
	for _, a := range byAck {
		if o, ok := owner[a.TLI]; ok && o != a.Server && example == "" {
			example = fmt.Sprintf("%s and %s both acknowledged writes on timeline %d (id %d at %s)",
				o, a.Server, a.TLI, a.ID, a.At.UTC().Format("15:04:05.000"))
		}
		owner[a.TLI] = a.Server
		// The acks strictly before a was sent.
		k := sort.Search(len(byAck), func(i int) bool { return !byAck[i].At.Before(a.Sent) })
		if k == 0 {
			continue
		}
		if n := byAck[newest[k-1]]; n.TLI > a.TLI {
			stale = append(stale, a)
			if example == "" {
				example = fmt.Sprintf("id %d (%s) committed by %s on timeline %d, sent %s, after %s had acknowledged id %d on timeline %d at %s",
					a.ID, a.Route, a.Server, a.TLI, a.Sent.UTC().Format("15:04:05.000"), n.Server, n.ID, n.TLI, n.At.UTC().Format("15:04:05.000"))
			}
		}
	}
	return stale, example
}

func servers(acks []Ack) string {
	seen := map[string]int{}
	for _, a := range acks {
		seen[a.Server]++
	}
	var parts []string
	for s, n := range seen {
		parts = append(parts, fmt.Sprintf("%s×%d", s, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// WriteGap is the longest time without any acknowledged write (from any
// client) between from and to, counting the stretch before the first and
// after the last acknowledgement in that window.
func WriteGap(acks []Ack, from, to time.Time) time.Duration {
	times := make([]time.Time, 0, len(acks))
	for _, a := range acks {
		times = append(times, a.At)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	prev := from
	for i := len(times) - 1; i >= 0; i-- {
		// Start from the last ack at or before from.
		if !times[i].After(from) {
			prev = times[i]
			break
		}
	}
	var gap time.Duration
	for _, t := range times {
		if !t.After(from) || t.After(to) {
			continue
		}
		if d := t.Sub(prev); d > gap {
			gap = d
		}
		prev = t
	}
	if d := to.Sub(prev); d > gap {
		gap = d
	}
	return gap
}
