package restore

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
	"github.com/pgguard/pgguard/internal/walspool"
)

// A restored copy's restore_command is pgguard-wal when it is installed
// beside pgguard: its first call runs pgguard wal-fetch, which leaves a
// wal-serve answering for the copy's directory, with the repository open,
// and that server ends once the directory is gone. The copy replays to the
// end of the backup through it and opens.
func TestRestoredCopyIsServedByWALServe(t *testing.T) {
	bin := testcluster.Binary(t) // pgguard and pgguard-wal, side by side
	acct := testcluster.Account(t)
	dir := scratch(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 64)
	rand.Read(key)
	keyFile := filepath.Join(dir, "repo.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	repoURL := "file://" + filepath.Join(dir, "repo")
	cfg := filepath.Join(dir, "node.yaml")
	pg := testcluster.StartPostgres(t, testcluster.PGOptions{Conf: []string{"archive_mode = on", "archive_command = 'true'"}})
	if err := os.WriteFile(cfg, []byte(testcluster.RepoConfig("copy", pg.DataDir(), pg.Port(), repoURL, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, bin, "repo", "init", "-c", cfg)
	if err := acct.ChownTree(dir); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "ALTER SYSTEM SET archive_command = '"+bin+" wal-push -c "+cfg+" %p'")
	pg.Exec(t, "SELECT pg_reload_conf()")
	pg.Pgbench(t, "-i", "-s", "1", "-q")
	run(t, bin, "backup", "full", "-c", cfg)
	if err := acct.ChownTree(dir); err != nil {
		t.Fatal(err)
	}
	pg.SwitchWALAndWaitArchived(t)

	target := filepath.Join(scratch(t), "data")
	run(t, bin, "restore", "-c", cfg, "--target-dir", target, "--immediate")
	conf, err := os.ReadFile(filepath.Join(target, "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(filepath.Dir(bin), "pgguard-wal") + " wal-fetch -c " + cfg + " %f %p"
	if !strings.Contains(string(conf), want) {
		t.Fatalf("postgresql.auto.conf has no restore_command %q:\n%s", want, conf)
	}
	// With the log collector, whose pipe every backend holds open.
	copied := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: target, Conf: []string{"logging_collector = on", "log_directory = 'log'"}})
	if got := copied.QueryString(t, "SELECT count(*) FROM pgbench_accounts"); got != "100000" {
		t.Fatalf("the restored copy has %s rows in pgbench_accounts, want 100000", got)
	}
	// Its first restore_command call left a wal-serve for the directory.
	// pgguard-wal alone (no pgguard beside it to fall back on) asks it as
	// PostgreSQL would: a file the archive lacks is exit 1, an archived
	// segment exit 0 with the file in place.
	alone := filepath.Join(scratch(t), "pgguard-wal")
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(bin), "pgguard-wal")); err != nil || os.WriteFile(alone, b, 0o755) != nil {
		t.Fatalf("copy pgguard-wal: %v", err)
	}
	if err := os.Chmod(filepath.Dir(alone), 0o755); err != nil {
		t.Fatal(err)
	}
	ask := func(name, dest string) (int, string) {
		cmd := exec.Command(alone, "wal-fetch", "-c", cfg, name, dest)
		cmd.Dir = target
		acct.Apply(cmd)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatalf("run pgguard-wal: %v", err)
		}
		return 0, string(out)
	}
	if rc, out := ask("00000009.history", "pg_wal/RECOVERYHISTORY"); rc != 1 {
		t.Fatalf("pgguard-wal for a history file the archive lacks: exit %d (%s); want 1 from wal-serve", rc, out)
	}
	seg := pg.QueryString(t, `SELECT left(max(name), 24) FROM pg_ls_archive_statusdir() WHERE name ~ '^[0-9A-F]{24}\.done$'`)
	if rc, out := ask(seg, "pg_wal/RECOVERYXLOG"); rc != 0 {
		t.Fatalf("pgguard-wal for archived segment %s: exit %d (%s); want 0 from wal-serve", seg, rc, out)
	}
	if fi, err := os.Stat(filepath.Join(target, "pg_wal", "RECOVERYXLOG")); err != nil || fi.Size() != 16<<20 {
		t.Fatalf("wal-serve wrote RECOVERYXLOG: %v, %v; want a 16 MiB segment", fi, err)
	}
	sock := walspool.FetchSocket(target)
	copied.Stop()
	// The server stopped whole while wal-serve still runs: its log
	// collector did not wait for wal-serve to close an inherited pipe.
	testcluster.WaitUntil(t, 30*time.Second, "the stopped server's processes end", func() (bool, string) {
		left := processesIn(target)
		return len(left) == 0, fmt.Sprintf("left running in %s: %v", target, left)
	})
	if c, err := net.DialTimeout("unix", sock, time.Second); err != nil {
		t.Fatalf("wal-serve ended with the server (%v): want it to wait for its idle time or its directory's removal", err)
	} else {
		c.Close()
	}
	os.RemoveAll(target)
	testcluster.WaitUntil(t, 30*time.Second, "wal-serve ends once its directory is gone", func() (bool, string) {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err != nil {
			return true, ""
		}
		c.Close()
		return false, "its socket still accepts"
	})
}

// processesIn lists the processes other than wal-serve whose working
// directory is dir (a server's postmaster and its children), as
// "pid command".
func processesIn(dir string) []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if cwd, err := os.Readlink(filepath.Join(p, "cwd")); err != nil || cwd != dir {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		if strings.Contains(cmd, "wal-serve") {
			continue
		}
		left = append(left, filepath.Base(p)+" "+cmd)
	}
	return left
}
