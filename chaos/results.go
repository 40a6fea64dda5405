package chaos

// The results file (one JSON Result a line) and the corrections the report
// applies to it: bugs fixed after trials ran, improvements that moved the
// figures, and trials whose outcome a later reading of their logs corrected.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// ReadResults reads a results file (one JSON Result a line).
func ReadResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Result
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		var r Result
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, s.Err()
}

// AppendResult adds one line to the results file.
func AppendResult(path string, r Result) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FixedBug is a bug the suite found after trials had already run on the
// code that had it. Those trials stay in the results file, but the main
// table counts only trials that ran the fix: a reader of the table wants
// to know what the code does now. The report lists the earlier trials in a
// table of their own, beside the finding that explains them.
type FixedBug struct {
	Finding string // item in chaos/FINDINGS.md
	What    string
	Modes   []string // the replication modes the bug could affect
	// FixedAt: every run of an affected mode whose trials started after
	// this instant ran the fix. Records carry no commit before the Code
	// field existed, so the cut is a time between the last run built
	// before the fix and the first run built after it.
	FixedAt time.Time
	Commits string
}

// FixedBugs lists the bugs whose earlier trials the main table leaves out.
var FixedBugs = []FixedBug{{
	Finding: "9",
	What:    "a new sync primary degraded to async at once from a stale streaming memory",
	Modes:   []string{"sync", "strict"},
	// The run with seed 207 was built at 14:40 UTC, before the fix was
	// committed (14:42:48 and 14:44:58), and its last trial started at
	// 14:45:08; the run with seed 208 was built at 14:50.
	FixedAt: time.Date(2026, 11, 23, 14, 46, 0, 0, time.UTC),
	Commits: "e285895, fd5ee66",
}, {
	Finding: "24",
	What:    "a new sync primary's interim sync key left out the new primary itself, so a double kill could promote a standby without an acknowledged write",
	Modes:   []string{"sync", "strict"},
	// Every sync and strict trial before the fix ran with it; the run of
	// SEED 11700, the last before it, was stopped at 12:47 UTC and the
	// fix was merged at 12:59.
	FixedAt: time.Date(2026, 12, 6, 12, 59, 0, 0, time.UTC),
	Commits: "6c32c9e (merged in ddcab22)",
}}

// Improvement is a change that moved the figures of some faults without
// fixing a bug in what the suite checks. Every trial stays in the main
// table; the report adds a table of the trials since the newest
// improvement, so that a reader sees what the code does now.
type Improvement struct {
	Finding string
	What    string
	// Since: every run started after this instant ran the change.
	Since   time.Time
	Commits string
}

// Improvements lists the changes, oldest first.
var Improvements = []Improvement{{
	Finding: "4",
	What:    "etcd's peer streams time out again (patched etcd transport): the store recovers ~2 s after a packet-dropping partition heals instead of ~25 s",
	// The round with seed 214 (async) was the first built after the
	// patch was committed (16:50:29 UTC); the round before it started
	// its last trial at 16:51:40.
	Since:   time.Date(2026, 11, 23, 16, 52, 0, 0, time.UTC),
	Commits: "7890d77",
}, {
	Finding: "10",
	What: "a standby whose WAL receiver streams a timeline its startup process refuses is rewound (the agent asks for the replay timeline); " +
		"full health also needs every standby to replay past the primary's position when the cluster first looked healthy, which adds up to 0.5 s to the time to health",
	// The round with seed 216 (async, cluster created 17:08:05 UTC) was
	// the first built with it; the round before ended at 17:07:58.
	Since:   time.Date(2026, 11, 23, 17, 8, 0, 0, time.UTC),
	Commits: "beb8a69, b7d2bf7",
}}

// Reassessed are trials whose recorded outcome a later reading of their
// logs corrected: the checker of the time passed them, and the note says
// why that was wrong. The report applies the correction (the results file
// keeps what was recorded).
type Reassessed struct {
	Fault, Mode string
	Seed        int64
	Note        string
}

// Reassessments: finding 10. In these trials a standby's WAL receiver
// streamed the new primary's timeline while its startup process refused
// to replay it ("new timeline N is not a child of database system timeline
// M" in its postgres.log from the double kill until the end of the run);
// the checker, which then trusted "streaming", counted the cluster healthy.
var Reassessments = []Reassessed{
	{"double-kill", "async", 202, "never healthy (reassessed, finding 10): n3 did not replay the new primary's timeline from 13:56:21 UTC to the end of the run; the checker of the time trusted its receiver's \"streaming\""},
	{"link-flap", "async", 202, "never healthy (reassessed, finding 10): n3 still did not replay the primary's timeline (stuck since the double kill before, until the end of the run)"},
	{"double-kill", "async", 206, "never healthy (reassessed, finding 10): n3 did not replay the new primary's timeline from 14:36:21 UTC to the end of the run; the checker of the time trusted its receiver's \"streaming\""},
	{"link-flap", "async", 206, "never healthy (reassessed, finding 10): n3 still did not replay the primary's timeline (stuck since the double kill before, until 14:40:39 UTC, the end of the run)"},
}

func reassess(results []Result) []Result {
	out := make([]Result, len(results))
	copy(out, results)
	for i, r := range out {
		for _, a := range Reassessments {
			if r.Fault == a.Fault && r.Mode == a.Mode && r.Seed == a.Seed {
				out[i].Healthy = false
				out[i].Problems = append(append([]string(nil), r.Problems...), a.Note)
			}
		}
	}
	return out
}

// RanFixedBug returns the fixed bug a trial ran with, if any.
func RanFixedBug(r Result) (FixedBug, bool) {
	for _, b := range FixedBugs {
		if r.Started.Before(b.FixedAt) && slices.Contains(b.Modes, r.Mode) {
			return b, true
		}
	}
	return FixedBug{}, false
}
