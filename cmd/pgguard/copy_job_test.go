package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// A copy job, run by the agent, copies the cluster's backups into the
// second repository of repository.copy_to (with its own key file); its
// second run stores nothing.
func TestCopyJobCopiesIntoTheSecondRepository(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1,
		Edit: func(cfg *config.Config) {
			dir := filepath.Dir(filepath.Dir(cfg.Postgres.DataDir))
			cfg.Repository.CopyTo.KeyFile = filepath.Join(dir, "offsite.key")
		},
		BeforeStart: func(c *testcluster.Cluster) {
			key := filepath.Join(c.Layout.Dir, "offsite.key")
			if err := os.WriteFile(key, []byte(strings.Repeat("0123456789abcdef", 4)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := nodeConfig(t, c.Layout.Dir, "offsite.yaml", "repository:\n  url: file://"+filepath.Join(c.Layout.Dir, "offsite")+"\n  key_file: "+key+"\n")
			if out, err := exec.Command(c.Exe, "repo", "init", "-c", cfg).CombinedOutput(); err != nil {
				t.Fatalf("init the second repository: %v\n%s", err, out)
			}
			acct, _ := osuser.Resolve("")
			for _, p := range []string{key, filepath.Join(c.Layout.Dir, "offsite")} {
				if err := acct.ChownTree(p); err != nil {
					t.Fatal(err)
				}
			}
		},
	}))
	node := c.Layout.ConfigPath(c.Layout.Nodes[0])
	if out, err := exec.Command(c.Exe, "backup", "full", "-c", node).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if out, err := tryJobs(c, "create", "offsite", "--kind", "copy", "--schedule", "manual"); err == nil || !strings.Contains(out, "to-repo") {
		t.Fatalf("a copy job without --to-repo was accepted: %v\n%s", err, out)
	}
	mustJobs(t, c, "create", "offsite", "--kind", "copy", "--to-repo", "file://"+filepath.Join(c.Layout.Dir, "offsite"), "--schedule", "manual")
	waitRun := func(n int) jobs.Run {
		t.Helper()
		var last jobs.Run
		c.WaitFor(fmt.Sprintf("copy run %d to end", n), 2*time.Minute, func(status.Report) bool {
			rs := jobRuns(t, c)
			if len(rs) < n || !rs[n-1].Status.Done() {
				return false
			}
			last = rs[n-1]
			return true
		})
		if last.Status != jobs.Succeeded {
			t.Fatalf("copy run %d: %s: %s\n%s", n, last.Status, last.Message, last.Log)
		}
		return last
	}
	mustJobs(t, c, "start", "offsite")
	first := waitRun(1)
	if first.BytesStored == 0 || first.BackupID == "" {
		t.Fatalf("first copy run stored nothing: %+v", first)
	}
	mustJobs(t, c, "start", "offsite")
	second := waitRun(2)
	if second.BytesStored != 0 {
		t.Fatalf("second copy run stored %d bytes, want 0\n%s", second.BytesStored, second.Log)
	}
	dstCfg := filepath.Join(c.Layout.Dir, "offsite.yaml")
	out, err := exec.Command(c.Exe, "backups", "-c", dstCfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), first.BackupID) {
		t.Fatalf("backups of the second repository: %v\n%s", err, out)
	}
	if out, err := exec.Command(c.Exe, "verify", "--all", "-c", dstCfg).CombinedOutput(); err != nil {
		t.Fatalf("verify of the second repository: %v\n%s", err, out)
	}
	t.Logf("copy job: first run stored %d bytes (backup %s), second run %d", first.BytesStored, first.BackupID, second.BytesStored)
}
