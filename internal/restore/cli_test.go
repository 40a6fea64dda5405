package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

// TestRestoreCommandWithWALArchive drives the whole path through the
// binary: archive_command = pgguard wal-push, pgguard backup full, then
// pgguard restore --time with the default restore_command (pgguard
// wal-fetch), --start --stop-after; the restored directory is started
// again and must hold exactly the first batch.
func TestRestoreCommandWithWALArchive(t *testing.T) {
	bin := testcluster.Binary(t)
	t.Setenv(passphraseVar, testrepo.Passphrase) // inherited by the servers and their archive/restore commands
	repoDir := filepath.Join(scratch(t), "repo")
	be, err := storage.NewLocal(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	testrepo.Init(t, be, testrepo.Passphrase, packs4MiB)
	if err := testcluster.Account(t).ChownTree(repoDir); err != nil {
		t.Fatal(err)
	}
	repoURL := "file://" + repoDir
	pg := testcluster.StartPostgres(t, testcluster.PGOptions{Conf: []string{
		"archive_mode = on",
		fmt.Sprintf("archive_command = '%s wal-push --repo %s %%p'", bin, repoURL),
	}})
	pg.Pgbench(t, "-i", "-s", "1", "-q")
	pg.Exec(t, "CREATE TABLE marks (batch int, n int)")
	run(t, bin, "backup", "full", "--repo", repoURL, "--pg", pg.ConnString())
	// The backup ran as root; wal-push runs as the server account.
	if err := testcluster.Account(t).ChownTree(repoDir); err != nil {
		t.Fatal(err)
	}
	var times []string
	for i := 1; i <= 2; i++ {
		pg.Exec(t, "INSERT INTO marks SELECT "+strconv.Itoa(i)+", g FROM generate_series(1, 500) g")
		times = append(times, pg.QueryString(t, "now()"))
		pg.Exec(t, "SELECT pg_switch_wal()")
	}
	pg.SwitchWALAndWaitArchived(t)
	// The repository holds the WAL now (wal-push wrote it as the server account).
	r, err := repo.Open(context.Background(), be, repo.Passphrase(testrepo.Passphrase), repo.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	if names, err := r.ListWAL(context.Background(), ""); err != nil || len(names) < 3 {
		t.Fatalf("archived WAL in the repository: %v, %v; want at least 3 segments", names, err)
	}

	target := filepath.Join(scratch(t), "data")
	out := run(t, bin, "restore", "--repo", repoURL, "--target-dir", target, "--time", times[0],
		"--start", "--stop-after", "--port", strconv.Itoa(testcluster.FreePort(t)), "--archive-mode", "off", "-o", "json")
	var res Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.BackupID == "" || res.OpenAfter <= 0 {
		t.Fatalf("restore -o json printed %q (%v): want a result with a backup id and an open time", out, err)
	}
	conf, err := os.ReadFile(filepath.Join(target, "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), bin+" wal-fetch --repo "+repoURL+" %f %p") {
		t.Errorf("postgresql.auto.conf has no wal-fetch restore_command:\n%s", conf)
	}
	if strings.Contains(string(conf), testrepo.Passphrase) {
		t.Fatal("the passphrase was written into postgresql.auto.conf")
	}
	restored := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: target})
	if got := restored.QueryString(t, "SELECT count(*) || '/' || max(batch) FROM marks"); got != "500/1" {
		t.Fatalf("pgguard restore --time %s: marks rows/max batch = %s, want 500/1", times[0], got)
	}
	t.Logf("CLI restore of %s: %d files, %d bytes in %s, open after %s", res.BackupID, res.Files, res.BytesTotal,
		res.Duration.Round(time.Millisecond), res.OpenAfter.Round(time.Millisecond))
}

const passphraseVar = "PGGUARD_PASSPHRASE"

// run runs the binary and returns its standard output; it fails the test
// with both outputs when the command fails.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pgguard %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
