package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Restores run as jobs (issue 18 item 2): a physical restore into a
// directory of the node, a logical restore into a new database, the
// archived WAL of a time range; each only once or by hand, each with its
// outcome and figures in 'jobs runs'; a restore job that names the node's
// own data directory fails without touching it.
func TestRestoreJobs(t *testing.T) {
	c, ctx, db := testcluster.StartRepoNode(t, 5*time.Minute)
	began := time.Now().UTC()
	if _, err := db.Exec(ctx, `CREATE TABLE kept AS SELECT g AS id FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	node := c.Layout.ConfigPath(c.Layout.Nodes[0])
	for _, args := range [][]string{{"backup", "full", "-c", node, "--label", "nightly"}, {"backup", "logical", "-c", node, "--db", "postgres", "--table", "kept"}} {
		if out, err := exec.Command(c.Exe, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if _, err := db.Exec(ctx, `SELECT pg_switch_wal()`); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) string {
		t.Helper()
		return mustJobs(t, c, args...)
	}
	waitRun := func(job string) jobs.Run {
		t.Helper()
		return waitJobRun(t, c, job+"'s run to end", job, 3*time.Minute)
	}
	dir := filepath.Join(c.Layout.Dir, "restored")
	if out, err := tryJobs(c, "create", "nightly-restore", "--kind", "restore", "--target-dir", dir, "--schedule", "daily@02:00"); err == nil || !strings.Contains(out, "runs once or by hand") {
		t.Fatalf("a restore job on a daily schedule was accepted: %v\n%s", err, out)
	}
	if out, err := tryJobs(c, "create", "two-targets", "--kind", "restore", "--target-dir", dir, "--target-immediate", "--target-lsn", "0/3000000", "--schedule", "manual"); err == nil || !strings.Contains(out, "at most one") {
		t.Fatalf("a restore job with two targets was accepted: %v\n%s", err, out)
	}

	must("create", "restore-nightly", "--kind", "restore", "--target-dir", dir, "--backup", "label:nightly", "--target-immediate", "--schedule", "immediate")
	r := waitRun("restore-nightly")
	if r.Status != jobs.Succeeded || r.BackupID == "" || r.BytesRead == 0 {
		t.Fatalf("restore run: %s: %s (backup %q, %d bytes)\n%s", r.Status, r.Message, r.BackupID, r.BytesRead, r.Log)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Fatalf("the restored directory has no PG_VERSION: %v", err)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if !strings.Contains(string(conf), "archive_mode = 'off'") && !strings.Contains(string(conf), "archive_mode = off") {
		t.Fatalf("the restored copy may archive into the cluster's repository; postgresql.auto.conf:\n%s", conf)
	}

	own := filepath.Dir(filepath.Join(c.Layout.NodeDir(c.Layout.Nodes[0]), "data", "x"))
	must("create", "clobber", "--kind", "restore", "--target-dir", own, "--schedule", "manual")
	must("start", "clobber")
	if r := waitRun("clobber"); r.Status != jobs.Failed || !strings.Contains(r.Message, "data directory") {
		t.Fatalf("a restore into the node's own data directory: %s: %s", r.Status, r.Message)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM kept`).Scan(&n); err != nil || n != 1000 {
		t.Fatalf("the node's database after the refused restore: %d rows (%v)", n, err)
	}

	must("create", "restore-kept", "--kind", "restore-logical", "--db", "postgres", "--table", "kept", "--into", "kept_copy", "--schedule", "immediate")
	if r := waitRun("restore-kept"); r.Status != jobs.Succeeded || r.BackupID == "" {
		t.Fatalf("restore-logical run: %s: %s (backup %q)\n%s", r.Status, r.Message, r.BackupID, r.Log)
	}
	copyDB, err := pgx.Connect(ctx, c.Layout.DSN()+" dbname=kept_copy")
	if err != nil {
		t.Fatal(err)
	}
	defer copyDB.Close(ctx)
	if err := copyDB.QueryRow(ctx, `SELECT count(*) FROM kept`).Scan(&n); err != nil || n != 1000 {
		t.Fatalf("kept_copy.kept has %d rows (%v), want 1000", n, err)
	}

	walDir := filepath.Join(c.Layout.Dir, "wal-range")
	must("create", "wal-range", "--kind", "restore-wal", "--target-dir", walDir,
		"--from", began.Add(-time.Minute).Format(time.RFC3339), "--to", time.Now().UTC().Add(time.Minute).Format(time.RFC3339), "--schedule", "manual")
	must("start", "wal-range")
	if r := waitRun("wal-range"); r.Status != jobs.Succeeded || strings.Contains(r.Log, "no result") {
		t.Fatalf("restore-wal run: %s: %s\n%s", r.Status, r.Message, r.Log)
	}
	entries, _ := os.ReadDir(walDir)
	if len(entries) == 0 {
		t.Fatal("restore-wal wrote no WAL file")
	}
	t.Logf("restore job: backup %s, %d bytes; restore-wal: %d files", r.BackupID, r.BytesRead, len(entries))
}
