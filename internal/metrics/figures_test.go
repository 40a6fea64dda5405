package metrics_test

import (
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/metrics"
)

func job(t *testing.T, id string, kind jobs.Kind, sched string, enabled bool) jobs.Job {
	t.Helper()
	s, err := schedule.Parse(sched, now.Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return jobs.Job{ID: id, Kind: kind, Schedule: s, Enabled: enabled}
}

func run(job string, status jobs.Status, endedAgo, took time.Duration) jobs.Run {
	end := now.Add(-endedAgo)
	return jobs.Run{Job: job, Status: status, Started: end.Add(-took), Ended: end, Trigger: end.Add(-took)}
}

func TestScheduleIntervalIsTheLongestGapOfTheMostFrequentJob(t *testing.T) {
	cases := []struct {
		name string
		jobs []jobs.Job
		kind string
		want time.Duration
	}{
		{"a daily full job allows a day", []jobs.Job{job(t, "daily", jobs.KindFull, "daily@02:00", true)}, "full", 24 * time.Hour},
		{"a weekday job allows the weekend: Friday to Monday", []jobs.Job{job(t, "wd", jobs.KindFull, "weekly:mon-fri@01:30", true)}, "full", 72 * time.Hour},
		{"of a daily and a weekly full job, the daily one decides", []jobs.Job{
			job(t, "weekly", jobs.KindFull, "weekly:sun@03:00", true), job(t, "daily", jobs.KindFull, "daily@02:00", true)}, "full", 24 * time.Hour},
		{"a disabled job allows nothing", []jobs.Job{job(t, "off", jobs.KindIncr, "hourly/1h", false)}, "incr", 0},
		{"a manual job does not repeat", []jobs.Job{job(t, "by-hand", jobs.KindDrill, "manual", true)}, "drill", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := metrics.SummarizeJobs(tc.jobs, nil, now)[tc.kind].Interval
			if got != tc.want {
				t.Fatalf("interval %s, want %s", got, tc.want)
			}
		})
	}
}

func TestAJobIsFailingUntilARunSucceeds(t *testing.T) {
	list := []jobs.Job{
		job(t, "drill-a", jobs.KindDrill, "weekly:sun@03:00", true),
		job(t, "drill-b", jobs.KindDrill, "weekly:sat@03:00", true),
		job(t, "drill-c", jobs.KindDrill, "weekly:fri@03:00", true),
		job(t, "drill-off", jobs.KindDrill, "weekly:fri@03:00", false),
	}
	runs := map[string][]jobs.Run{
		// failed, then a retry interrupted and a run skipped: still failing
		"drill-a": {run("drill-a", jobs.Failed, 3*time.Hour, 2*time.Minute), run("drill-a", jobs.Interrupted, 2*time.Hour, time.Minute),
			run("drill-a", jobs.Skipped, time.Hour, time.Second)},
		// failed, then succeeded: not failing
		"drill-b": {run("drill-b", jobs.Succeeded, 30*time.Minute, 90*time.Second), run("drill-b", jobs.Failed, 5*time.Hour, time.Minute)},
		// still running: no verdict
		"drill-c": {{Job: "drill-c", Status: jobs.Running, Started: now.Add(-time.Minute)}},
		// a disabled job's failure wakes nobody
		"drill-off": {run("drill-off", jobs.Failed, 10*time.Minute, time.Minute)},
	}
	k := metrics.SummarizeJobs(list, runs, now)["drill"]
	if k.Enabled != 3 || k.Failing != 1 {
		t.Fatalf("enabled %d failing %d, want 3 and 1 (drill-a)", k.Enabled, k.Failing)
	}
	if !k.LastSuccess.Equal(now.Add(-30*time.Minute)) || k.LastDuration != time.Minute || !k.LastEnded.Equal(now.Add(-10*time.Minute)) {
		t.Fatalf("last success %s, last run ended %s after %s; want drill-b's success 30 minutes ago and drill-off's failure 10 minutes ago after a minute",
			k.LastSuccess, k.LastEnded, k.LastDuration)
	}
}

func TestBackupsAreSummarizedByKindNewestLast(t *testing.T) {
	got := metrics.SummarizeBackups([]metrics.Backup{
		{Kind: "full", Stop: now.Add(-time.Hour), Size: 2},
		{Kind: "full", Stop: now.Add(-3 * time.Hour), Size: 1},
		{Kind: "logical", Stop: now.Add(-2 * time.Hour), Size: 5},
	})
	if got["full"].Count != 2 || got["full"].Last.Size != 2 || got["logical"].Count != 1 || got["logical"].Last.Size != 5 || len(got) != 2 {
		t.Fatalf("summary %+v", got)
	}
}
