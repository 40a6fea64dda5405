package backup_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// TestBackupFromStandbyThroughCLI takes `pgguard backup full --from-standby`
// of a streaming standby while the primary archives into the repository,
// refuses the flag against the primary, and restores the standby's backup
// to the primary's data.
func TestBackupFromStandbyThroughCLI(t *testing.T) {
	e, primary := newRepoEnv(t, nil)
	primary.Pgbench(t, "-i", "-s", "2", "-q")
	standbyDir := filepath.Join(e.dir, "standby")
	cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "pg_basebackup"), "-h", "127.0.0.1",
		"-p", strconv.Itoa(primary.Port()), "-U", "postgres", "-D", standbyDir, "-R", "-X", "stream", "-c", "fast")
	e.acct.Apply(cmd)
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	standby := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: standbyDir})

	res := e.run(nil, "backup", "full", "--from-standby", "-c", e.cfgPath)
	if res.code == 0 || !strings.Contains(res.stderr, "not in recovery") {
		t.Errorf("--from-standby against the primary: exit %d, stderr %q; want a refusal", res.code, res.stderr)
	}
	primary.Pgbench(t, "-c", "2", "-t", "100", "-n")
	primary.Exec(t, "CHECKPOINT") // the standby's backup starts at its next restartpoint
	rep := e.backup("full", "--from-standby", "--pg", standby.ConnString(), "--pgdata", standbyDir)
	if rep.Kind != "full" {
		t.Fatalf("standby backup kind %s", rep.Kind)
	}
	primary.Pgbench(t, "-c", "2", "-t", "50", "-n")
	want := primary.QueryString(t, fingerprintSQL)
	primary.SwitchWALAndWaitArchived(t)

	r, m := e.manifest(rep.ID)
	restored := e.startRestored("restored standby backup", r, m, func(dataDir string) {
		os.Remove(filepath.Join(dataDir, "standby.signal")) // restore as a new primary
	})
	if got := restored.QueryString(t, fingerprintSQL); got != want {
		t.Errorf("restored standby backup: %s, primary had %s", got, want)
	}
}
