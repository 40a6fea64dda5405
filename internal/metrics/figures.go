package metrics

import (
	"sort"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
)

// The slow figures: read by the agent in the background (the repository's
// backups and size, the store's jobs and runs), summarized here once per
// read, and reported as they were at the last read.

// Backup is one backup of the repository, as its manifest describes it.
type Backup struct {
	Kind        string // full, incr, logical
	Start, Stop time.Time
	// Size is the data the backup covers (the data directory, or the
	// dump); Stored what it newly stored in the repository.
	Size, Stored int64
}

// BackupKind summarizes the backups of one kind.
type BackupKind struct {
	Count int
	// Last is the newest backup of the kind (by its end).
	Last Backup
}

// Repository is the last read of the backup repository.
type Repository struct {
	ReadAt time.Time
	// OK: the last read succeeded (a failed read keeps the figures of
	// the last good one).
	OK      bool
	Backups map[string]BackupKind
	// Size is the bytes the repository holds, as of SizeAt (zero: not
	// measured yet).
	Size   int64
	SizeAt time.Time
}

// SummarizeBackups groups backups by kind, keeping the newest of each.
func SummarizeBackups(list []Backup) map[string]BackupKind {
	out := map[string]BackupKind{}
	for _, b := range list {
		k := out[b.Kind]
		k.Count++
		if k.Count == 1 || b.Stop.After(k.Last.Stop) {
			k.Last = b
		}
		out[b.Kind] = k
	}
	return out
}

// JobKind summarizes the jobs of one kind and their runs.
type JobKind struct {
	// Enabled counts the kind's enabled jobs; Failing those of them whose
	// last decided run (succeeded or failed) failed.
	Enabled, Failing int
	// LastDuration is how long the kind's newest run that succeeded or
	// failed took, LastEnded when it ended;
	// LastSuccess when its newest successful run ended (zero: none).
	LastDuration time.Duration
	LastEnded    time.Time
	LastSuccess  time.Time
	// Interval is the longest gap the schedules of the kind's enabled
	// jobs leave between two runs (the smallest over its jobs; zero when
	// none repeats): a backup older than that is overdue.
	Interval time.Duration
}

// Jobs is the last read of the store's jobs and runs.
type Jobs struct {
	ReadAt time.Time
	OK     bool
	ByKind map[string]JobKind
}

// intervalHorizon is how many of a schedule's next triggers its interval
// is measured over: a month of daily runs, a weekday schedule's weekend.
const intervalHorizon = 32

// SummarizeJobs summarizes list and its runs (by job id) at now.
func SummarizeJobs(list []jobs.Job, runs map[string][]jobs.Run, now time.Time) map[string]JobKind {
	out := map[string]JobKind{}
	for _, j := range list {
		k := out[string(j.Kind)]
		if j.Enabled {
			k.Enabled++
			if iv := maxGap(j, now); iv > 0 && (k.Interval == 0 || iv < k.Interval) {
				k.Interval = iv
			}
		}
		// The newest run that succeeded or failed is the job's verdict;
		// skipped, interrupted (retried) and stopped runs give none.
		var verdict jobs.Status
		for _, r := range decidedRuns(runs[j.ID]) {
			verdict = r.Status
			if r.Ended.After(k.LastEnded) {
				k.LastEnded, k.LastDuration = r.Ended, r.Ended.Sub(r.Started)
			}
			if r.Status == jobs.Succeeded && r.Ended.After(k.LastSuccess) {
				k.LastSuccess = r.Ended
			}
		}
		if j.Enabled && verdict == jobs.Failed {
			k.Failing++
		}
		out[string(j.Kind)] = k
	}
	return out
}

// decidedRuns are the runs that succeeded or failed, oldest end first.
func decidedRuns(runs []jobs.Run) []jobs.Run {
	out := make([]jobs.Run, 0, len(runs))
	for _, r := range runs {
		if (r.Status == jobs.Succeeded || r.Status == jobs.Failed) && !r.Ended.IsZero() {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Ended.Before(out[b].Ended) })
	return out
}

// maxGap is the longest time between two of the job's next triggers
// after now (zero for a schedule that does not repeat).
func maxGap(j jobs.Job, now time.Time) time.Duration {
	prev, ok := j.Schedule.Next(now)
	if !ok {
		return 0
	}
	var gap time.Duration
	for range intervalHorizon {
		next, ok := j.Schedule.Next(prev)
		if !ok {
			break
		}
		gap = max(gap, next.Sub(prev))
		prev = next
	}
	return gap
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func (c *Collector) repository(e emitter, now time.Time, r Repository) {
	e.gauge(c.d.readAt, unix(r.ReadAt), "repository")
	e.gauge(c.d.readOK, flag(r.OK), "repository")
	for kind, b := range r.Backups {
		e.gauge(c.d.backups, float64(b.Count), kind)
		if b.Count == 0 {
			continue
		}
		e.gauge(c.d.backupAge, max(now.Sub(b.Last.Stop).Seconds(), 0), kind)
		e.gauge(c.d.backupSize, float64(b.Last.Size), kind)
		e.gauge(c.d.backupStored, float64(b.Last.Stored), kind)
		e.gauge(c.d.backupDuration, b.Last.Stop.Sub(b.Last.Start).Seconds(), kind)
	}
	if !r.SizeAt.IsZero() {
		e.gauge(c.d.repoSize, float64(r.Size))
	}
}

func (c *Collector) jobs(e emitter, j Jobs) {
	e.gauge(c.d.readAt, unix(j.ReadAt), "jobs")
	e.gauge(c.d.readOK, flag(j.OK), "jobs")
	for kind, k := range j.ByKind {
		e.gauge(c.d.jobsEnabled, float64(k.Enabled), kind)
		e.gauge(c.d.jobsFailing, float64(k.Failing), kind)
		if !k.LastEnded.IsZero() {
			e.gauge(c.d.jobDuration, k.LastDuration.Seconds(), kind)
		}
		if !k.LastSuccess.IsZero() {
			e.gauge(c.d.jobLastSuccess, unix(k.LastSuccess), kind)
		}
		if k.Interval > 0 {
			e.gauge(c.d.jobInterval, k.Interval.Seconds(), kind)
		}
	}
}
