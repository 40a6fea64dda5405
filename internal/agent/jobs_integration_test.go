package agent_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func jobRuns(t *testing.T, c *testcluster.Cluster) []jobs.Run {
	t.Helper()
	out, err := exec.Command(c.Exe, "jobs", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml"), "runs", "-o", "json").Output()
	if err != nil {
		t.Fatalf("jobs runs: %v", err)
	}
	var runs []jobs.Run
	if err := json.Unmarshal(out, &runs); err != nil {
		t.Fatalf("jobs runs output: %v\n%s", err, out)
	}
	return runs
}

func succeededBy(runs []jobs.Run, node string) int {
	n := 0
	for _, r := range runs {
		if r.Status == jobs.Succeeded && (node == "" || r.Node == node) {
			n++
		}
	}
	return n
}

// A daily backup job on a job clock that runs 17280 times faster (one day
// every 5 s): the primary runs each trigger; after the primary's host is
// lost the new primary runs the next triggers; no trigger runs twice.
func TestDailyBackupJobFollowsThePrimaryAcrossFailover(t *testing.T) {
	epoch := time.Now()
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		cfg.Jobs.ClockSpeed, cfg.Jobs.ClockEpoch = 17280, epoch
	}}))
	old := c.Leader()
	ctl := filepath.Join(c.Layout.Dir, "ctl.yaml")
	out, err := exec.Command(c.Exe, "jobs", "-c", ctl, "create", "nightly", "--kind", "full", "--schedule", "daily@02:00", "--channels", "2").CombinedOutput()
	if err != nil {
		t.Fatalf("jobs create: %v\n%s", err, out)
	}
	c.WaitFor("two nightly backups on "+old, 60*time.Second, func(status.Report) bool { return succeededBy(jobRuns(t, c), old) >= 2 })

	c.KillNode(old)
	r := c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	c.WaitFor("two nightly backups on "+r.Leader, 90*time.Second, func(status.Report) bool { return succeededBy(jobRuns(t, c), r.Leader) >= 2 })

	runs := jobRuns(t, c)
	byTrigger := map[time.Time]int{}
	for _, run := range runs {
		if run.Status == jobs.Succeeded {
			byTrigger[run.Trigger.UTC()]++
		}
		if run.Status == jobs.Running && run.Node == old {
			t.Errorf("run %s of the dead node was left running, not interrupted", run.Key())
		}
	}
	for trig, n := range byTrigger {
		if n > 1 {
			t.Errorf("trigger %s succeeded %d times", trig, n)
		}
	}
	out, err = exec.Command(c.Exe, "backups", "-c", c.Layout.ConfigPath(r.Leader), "-o", "json").Output()
	if err != nil {
		t.Fatalf("backups: %v", err)
	}
	var backups []map[string]any
	if err := json.Unmarshal(out, &backups); err != nil {
		t.Fatalf("backups output: %v\n%s", err, out)
	}
	if len(backups) < succeededBy(runs, "") {
		t.Fatalf("%d succeeded runs but %d backups in the repository", succeededBy(runs, ""), len(backups))
	}
	t.Logf("%d runs (%d by %s before its host was lost, %d by %s after), %d backups in the repository",
		len(runs), succeededBy(runs, old), old, succeededBy(runs, r.Leader), r.Leader, len(backups))
}

// A failing precondition records the run as skipped; pre and post scripts
// get the job's context in PGGUARD_* variables and never a secret.
func TestJobPreconditionAndScripts(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1}))
	ctl := filepath.Join(c.Layout.Dir, "ctl.yaml")
	gate, envFile := filepath.Join(c.Layout.Dir, "go-ahead"), filepath.Join(c.Layout.Dir, "post.env")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(c.Exe, append([]string{"jobs", "-c", ctl}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("jobs %v: %v\n%s", args, err, out)
		}
	}
	run("create", "gated", "--kind", "verify", "--schedule", "manual",
		"--precondition", "test -f "+gate, "--pre", "echo pre-ran", "--post", "env | grep ^PGGUARD_ > "+envFile)
	run("start", "gated")
	c.WaitFor("the gated run to be skipped", 30*time.Second, func(status.Report) bool {
		runs := jobRuns(t, c)
		return len(runs) == 1 && runs[0].Status == jobs.Skipped
	})
	if err := exec.Command("touch", gate).Run(); err != nil {
		t.Fatal(err)
	}
	_ = exec.Command("chmod", "666", gate).Run()
	run("start", "gated")
	c.WaitFor("the second run to succeed", 60*time.Second, func(status.Report) bool {
		return succeededBy(jobRuns(t, c), "") == 1
	})
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("post script did not run: %v", err)
	}
	env := string(data)
	for _, want := range []string{"PGGUARD_JOB_ID=gated", "PGGUARD_JOB_KIND=verify", "PGGUARD_RUN_STATUS=succeeded", "PGGUARD_NODE=n1"} {
		if !strings.Contains(env, want) {
			t.Fatalf("post script environment lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(strings.ToUpper(env), "PASSPHRASE") {
		t.Fatalf("a secret reached the script environment:\n%s", env)
	}
	runs := jobRuns(t, c)
	if !strings.Contains(runs[len(runs)-1].Log, "pre-ran") {
		t.Fatalf("run log lacks the pre script's output: %q", runs[len(runs)-1].Log)
	}
}

// A running job shows its progress (bytes done of the total, rate) in its
// run record, and the finished run no longer carries it.
func TestRunningJobShowsProgress(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1}))
	ctl := filepath.Join(c.Layout.Dir, "ctl.yaml")
	// About 24 MiB of PGDATA at 3 MiB/s: several progress reports.
	if out, err := exec.Command(c.Exe, "jobs", "-c", ctl, "create", "slow-full", "--kind", "full", "--schedule", "manual",
		"--read-limit", "3MiB").CombinedOutput(); err != nil {
		t.Fatalf("jobs create: %v\n%s", err, out)
	}
	if out, err := exec.Command(c.Exe, "jobs", "-c", ctl, "start", "slow-full").CombinedOutput(); err != nil {
		t.Fatalf("jobs start: %v\n%s", err, out)
	}
	var seen *jobs.Progress
	c.WaitFor("progress in the running run", 60*time.Second, func(status.Report) bool {
		for _, r := range jobRuns(t, c) {
			if r.Status == jobs.Running && r.Progress != nil && r.Progress.DoneBytes > 0 && r.Progress.TotalBytes > 0 {
				seen = r.Progress
				return true
			}
		}
		return false
	})
	out, err := exec.Command(c.Exe, "jobs", "-c", ctl, "runs", "slow-full").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "% of ") {
		t.Fatalf("jobs runs does not show the progress: %v\n%s", err, out)
	}
	t.Logf("progress seen: %+v\n%s", *seen, out)
	c.WaitFor("the run to succeed", 120*time.Second, func(status.Report) bool { return succeededBy(jobRuns(t, c), "") == 1 })
	for _, r := range jobRuns(t, c) {
		if r.Progress != nil {
			t.Fatalf("finished run still carries progress: %+v", r)
		}
		if strings.Contains(r.Log, `"event":"progress"`) {
			t.Fatalf("progress lines went into the run's log:\n%s", r.Log)
		}
	}
}
