package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// jobs edit, clone, delete and stop, and a drill job end to end, whose
// failing check ends its run as failed and raises the alarm in the history
// (issue 18 item 7).
func TestJobsEditCloneDeleteStopAndAFailingDrill(t *testing.T) {
	c, ctx, db := testcluster.StartRepoNode(t, 5*time.Minute)
	// About 60 MB, so that a backup read at 2 MiB/s runs long enough to
	// be stopped.
	if _, err := db.Exec(ctx, `CREATE TABLE drilled AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 700000) g`); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) string {
		t.Helper()
		return mustJobs(t, c, args...)
	}
	show := func(id string) jobs.Job {
		t.Helper()
		var j jobs.Job
		if err := json.Unmarshal([]byte(must("show", id, "-o", "json")), &j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	runOf := func(job string, done bool) (jobs.Run, bool) {
		for _, r := range jobRuns(t, c) {
			if r.Job == job && (!done || r.Status.Done()) {
				return r, true
			}
		}
		return jobs.Run{}, false
	}

	// edit and clone.
	must("create", "slow-full", "--kind", "full", "--schedule", "manual", "--read-limit", "2MiB")
	must("edit", "slow-full", "--name", "slow full backup", "--channels", "1")
	if j := show("slow-full"); j.Name != "slow full backup" || j.Options.Channels != 1 || j.Options.ReadLimit != "2MiB" {
		t.Fatalf("after edit: %+v", j)
	}
	must("clone", "slow-full", "slow-full-2")
	if j := show("slow-full-2"); j.Kind != jobs.KindFull || j.Options.ReadLimit != "2MiB" || j.ID != "slow-full-2" {
		t.Fatalf("clone: %+v", j)
	}
	must("delete", "slow-full-2")
	if out, err := tryJobs(c, "show", "slow-full-2"); err == nil {
		t.Fatalf("a deleted job is still shown:\n%s", out)
	}

	// stop: a running backup ends as stopped, and no backup is left.
	must("start", "slow-full")
	c.WaitFor("slow-full running", time.Minute, func(status.Report) bool {
		r, ok := runOf("slow-full", false)
		return ok && r.Status == jobs.Running
	})
	must("stop", "slow-full")
	c.WaitFor("slow-full stopped", time.Minute, func(status.Report) bool {
		r, ok := runOf("slow-full", true)
		return ok && r.Status == jobs.Stopped
	})
	node := c.Layout.ConfigPath(c.Layout.Nodes[0])
	out, err := exec.Command(c.Exe, "backups", "-c", node, "-o", "json").Output()
	var left []struct{ ID string }
	if err != nil || json.Unmarshal(out, &left) != nil || len(left) != 0 {
		t.Fatalf("a stopped backup left a backup behind: %v\n%s", err, out)
	}

	// A drill needs a backup; its check fails (the table has 700000 rows).
	if out, err := exec.Command(c.Exe, "backup", "full", "-c", node).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	began := time.Now()
	must("create", "drill-wrong", "--kind", "drill", "--schedule", "immediate", "--check", "SELECT count(*) FROM drilled=5")
	failed := waitJobRun(t, c, "the drill run to end", "drill-wrong", 3*time.Minute)
	if failed.Status != jobs.Failed {
		t.Fatalf("a drill whose check fails ended %s: %s", failed.Status, failed.Message)
	}
	var alarm *dcs.Event
	for _, e := range historyEvents(t, c, began) {
		if e.Action == ha.EventJobFailed && e.Target == "drill-wrong" {
			alarm = &e
		}
	}
	if alarm == nil {
		t.Fatal("no job-failed alarm in the history for the failed drill")
	}
	if !strings.Contains(alarm.Reason, "drilled") || !strings.Contains(failed.Message, "drilled") {
		t.Fatalf("the alarm (%q) and the run's message (%q) do not say which check failed", alarm.Reason, failed.Message)
	}
	must("create", "drill-right", "--kind", "drill", "--schedule", "immediate", "--check", "SELECT count(*) FROM drilled=700000")
	failed = waitJobRun(t, c, "the passing drill run to end", "drill-right", 3*time.Minute)
	if failed.Status != jobs.Succeeded || failed.BackupID == "" || failed.BytesRead == 0 {
		t.Fatalf("a drill whose check passes ended %s: %s (backup %q, %d bytes)\n%s", failed.Status, failed.Message, failed.BackupID, failed.BytesRead, failed.Log)
	}
	t.Logf("failed drill alarm: %s: %s", alarm.Action, alarm.Reason)
}

func historyEvents(t *testing.T, c *testcluster.Cluster, since time.Time) []dcs.Event {
	t.Helper()
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	events, err := store.History(ctx, since.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// tryJobs runs 'pgguard jobs args' against c and returns its output and
// error, for a command that may be refused.
func tryJobs(c *testcluster.Cluster, args ...string) (string, error) {
	out, err := exec.Command(c.Exe, append([]string{"jobs", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml")}, args...)...).CombinedOutput()
	return string(out), err
}

// mustJobs is tryJobs failing the test when the command fails.
func mustJobs(t *testing.T, c *testcluster.Cluster, args ...string) string {
	t.Helper()
	out, err := tryJobs(c, args...)
	if err != nil {
		t.Fatalf("jobs %v: %v\n%s", args, err, out)
	}
	return out
}

// jobRuns is every run of c's jobs ('jobs runs').
func jobRuns(t *testing.T, c *testcluster.Cluster) []jobs.Run {
	t.Helper()
	var rs []jobs.Run
	if err := json.Unmarshal([]byte(mustJobs(t, c, "runs", "-o", "json")), &rs); err != nil {
		t.Fatalf("jobs runs: %v", err)
	}
	return rs
}

// waitJobRun waits up to timeout (for what) until a run of job has ended,
// and returns it.
func waitJobRun(t *testing.T, c *testcluster.Cluster, what, job string, timeout time.Duration) jobs.Run {
	t.Helper()
	var ended jobs.Run
	c.WaitFor(what, timeout, func(status.Report) bool {
		for _, r := range jobRuns(t, c) {
			if r.Job == job && r.Status.Done() {
				ended = r
				return true
			}
		}
		return false
	})
	return ended
}
