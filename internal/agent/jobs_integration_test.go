package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
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
			// The figures come from the command's result message.
			if run.BackupID == "" || run.BytesRead == 0 && !strings.Contains(run.Message, "restarted") {
				t.Errorf("succeeded run %s records backup %q, %d bytes read: the command's result was lost\n%s", run.Key(), run.BackupID, run.BytesRead, run.Log)
			}
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

// writeScripts makes executables for jobs.scripts: name → shell body.
func writeScripts(t *testing.T, bodies map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	// The agent may run as the database account: it must reach them.
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	out := map[string]string{}
	for name, body := range bodies {
		path := filepath.Join(dir, name+".sh")
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		out[name] = path
	}
	return out
}

// Scripts are names the node allow-lists, run without a shell and with
// only the job's context: a failing precondition records the run as
// skipped; the scripts get PGGUARD_* variables and nothing of the agent's
// environment; their output goes to the node's log, not the store.
func TestJobPreconditionAndScripts(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "inherited-cloud-key")
	t.Setenv("PGGUARD_PASSPHRASE", "inherited-repository-passphrase")
	scripts := writeScripts(t, map[string]string{
		"gate": `test -f "$1"`,
		"pre":  `echo pre-ran "$@"`,
		"post": `env > "$1"`,
	})
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1, Edit: func(cfg *config.Config) {
		cfg.Jobs.Scripts = scripts
	}}))
	ctl := filepath.Join(c.Layout.Dir, "ctl.yaml")
	gate, envFile := filepath.Join(c.Layout.Dir, "go-ahead"), filepath.Join(c.Layout.Dir, "post.env")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(c.Exe, append([]string{"jobs", "-c", ctl}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("jobs %v: %v\n%s", args, err, out)
		}
	}
	run("create", "gated", "--kind", "verify", "--schedule", "manual",
		"--precondition", "gate", "--precondition-arg", gate, "--pre", "pre", "--pre-arg", "two words; $(touch /nonexistent)",
		"--post", "post", "--post-arg", envFile)
	run("start", "gated")
	c.WaitFor("the gated run to be skipped", 30*time.Second, func(status.Report) bool {
		runs := jobRuns(t, c)
		return len(runs) == 1 && runs[0].Status == jobs.Skipped
	})
	if err := exec.Command("touch", gate).Run(); err != nil {
		t.Fatal(err)
	}
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
	for _, secret := range []string{"inherited-cloud-key", "inherited-repository-passphrase", "AWS_", "PASSPHRASE", "HOME="} {
		if strings.Contains(env, secret) {
			t.Fatalf("the agent's environment (%s) reached the script:\n%s", secret, env)
		}
	}
	runs := jobRuns(t, c)
	last := runs[len(runs)-1]
	if strings.Contains(last.Log, "pre-ran") || !strings.Contains(last.Log, "pre script pre: ok") {
		t.Fatalf("the run record must say the pre script ran, and keep its output out of the store: %q", last.Log)
	}
	agentLog, err := os.ReadFile(filepath.Join(c.Layout.NodeDir("n1"), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(agentLog), `pre-ran two words; $(touch /nonexistent)`) {
		t.Fatalf("the node's log lacks the pre script's output with its argument passed verbatim (no shell)")
	}
}

// A job written straight into the store with a shell string, and a job
// naming a script the node does not allow-list, are refused: nothing of
// them runs, the run says why, and the history records the refusal.
func TestJobsFromTheStoreRunNoShell(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1}))
	ctl := filepath.Join(c.Layout.Dir, "ctl.yaml")
	marker := filepath.Join(c.Layout.Dir, "pwned")
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	forged := `{"id":"forged","name":"forged","kind":"verify","schedule":{"kind":"manual"},"enabled":true,"pre_script":"touch ` + marker + `"}`
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = store.Client().Put(ctx, "/pgguard/"+c.Layout.Cluster+"/jobs/forged", forged)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(c.Exe, "jobs", "-c", ctl, "create", "unlisted", "--kind", "verify", "--schedule", "manual", "--pre", "not-listed").CombinedOutput(); err != nil {
		t.Fatalf("jobs create: %v\n%s", err, out)
	}
	for _, id := range []string{"forged", "unlisted"} {
		if out, err := exec.Command(c.Exe, "jobs", "-c", ctl, "start", id).CombinedOutput(); err != nil {
			t.Fatalf("jobs start %s: %v\n%s", id, err, out)
		}
	}
	c.WaitFor("both runs to end", 30*time.Second, func(status.Report) bool {
		runs := jobRuns(t, c)
		return len(runs) == 2 && runs[0].Status.Done() && runs[1].Status.Done()
	})
	for _, r := range jobRuns(t, c) {
		want := map[string]string{"forged": "shell string", "unlisted": `"not-listed" is not allow-listed on node n1`}[r.Job]
		if r.Status != jobs.Failed || !strings.HasPrefix(r.Message, "refused: ") || !strings.Contains(r.Message, want) {
			t.Errorf("run of %s: %s %q, want failed with a refusal naming %q", r.Job, r.Status, r.Message, want)
		}
		if strings.Contains(r.Log, "verif") {
			t.Errorf("run of %s ran its command although it was refused: %q", r.Job, r.Log)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("the shell string from the store ran: %s exists", marker)
	}
	refused := 0
	for _, e := range history(t, c) {
		if e.Action == ha.EventJobRefused {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("%d job-refused events in the history, want 2", refused)
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

// A run's outcome is recorded truthfully when the store cannot take it at
// once, and a run left "running" by a restart is not repeated when its
// backup is in the repository (issue 18 item 9: a fresh demo's first full
// backup succeeded while the store was briefly unreachable, was recorded
// as "interrupted: this node restarted" although it had not, and a second
// full backup was taken).
func TestJobOutcomeSurvivesAStoreOutageAndARestart(t *testing.T) {
	scripts := writeScripts(t, map[string]string{"hold": `while [ ! -f "$1" ]; do sleep 0.05; done`})
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1, ExternalEtcd: true,
		Edit: func(cfg *config.Config) { cfg.Jobs.Scripts = scripts }}))
	ctl := filepath.Join(c.Layout.Dir, "ctl.yaml")
	release := filepath.Join(c.Layout.Dir, "release")
	jobsCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(c.Exe, append([]string{"jobs", "-c", ctl}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("jobs %v: %v\n%s", args, err, out)
		}
	}
	backups := func() []map[string]any {
		t.Helper()
		out, err := exec.Command(c.Exe, "backups", "-c", c.Layout.ConfigPath("n1"), "-o", "json").Output()
		if err != nil {
			t.Fatalf("backups: %v", err)
		}
		var list []map[string]any
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("backups output: %v\n%s", err, out)
		}
		return list
	}
	jobsCmd("create", "once", "--kind", "full", "--schedule", "manual", "--post", "hold", "--post-arg", release)
	jobsCmd("start", "once")
	// The backup is in the repository; the post script holds the run
	// open. Cut the store off, let the run end, and give the store back
	// once the agent has found it cannot record the outcome.
	c.WaitFor("the run's backup in the repository", 60*time.Second, func(status.Report) bool { return len(backups()) == 1 })
	c.StoreProxies["n1"].Cut()
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	agentLog := filepath.Join(c.Layout.NodeDir("n1"), "agent.log")
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(agentLog)
		if strings.Contains(string(data), "did not take its outcome") {
			break
		}
		if time.Now().After(deadline) {
			c.StoreProxies["n1"].Restore()
			t.Fatal("the agent never reported a run outcome the store did not take")
		}
		time.Sleep(100 * time.Millisecond) // polling the agent's log
	}
	c.StoreProxies["n1"].Restore()
	c.WaitFor("the run recorded as succeeded", 60*time.Second, func(status.Report) bool {
		runs := jobRuns(t, c)
		return len(runs) == 1 && runs[0].Status == jobs.Succeeded
	})

	// A run this node claimed before a restart, whose backup is in the
	// repository: recorded as succeeded with that backup, not run again.
	// (The outage fenced the primary: let it lead again first.)
	c.WaitHealthy(60 * time.Second)
	before := time.Now()
	out, err := exec.Command(c.Exe, "backup", "full", "-c", c.Layout.ConfigPath("n1"), "-o", "json").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("backup full: %v\n%s%s", err, out, stderr)
	}
	var made struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &made); err != nil || made.ID == "" {
		t.Fatalf("backup full output has no id (%v):\n%s", err, out)
	}
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	trigger := time.Now()
	_, ok, err := store.ClaimRun(ctx, jobs.Run{Job: "once", Trigger: trigger, Attempt: 1, Node: "n1", Status: jobs.Running, Started: before})
	cancel()
	if err != nil || !ok {
		t.Fatalf("write the run left behind: ok %v, %v", ok, err)
	}
	c.WaitFor("the left-behind run recognised", 60*time.Second, func(status.Report) bool {
		for _, r := range jobRuns(t, c) {
			if r.Trigger.Equal(trigger) && r.Status == jobs.Succeeded {
				return true
			}
		}
		return false
	})
	for _, r := range jobRuns(t, c) {
		if r.Trigger.Equal(trigger) && (r.Attempt != 1 || r.BackupID != made.ID || !strings.Contains(r.Message, "restarted")) {
			t.Fatalf("left-behind run recorded as %+v; want attempt 1 only, backup %s, a message saying the node restarted", r, made.ID)
		}
	}
	if n := len(backups()); n != 2 {
		t.Fatalf("%d backups in the repository, want 2 (the job's and the one made by hand): a run was repeated", n)
	}
	for _, e := range history(t, c) {
		if e.Action == ha.EventJobInterrupted && !strings.Contains(e.Reason, "restarted") {
			t.Fatalf("history says a run was interrupted for another reason: %+v", e)
		}
	}
}
