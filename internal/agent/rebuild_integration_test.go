package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// sqlOn runs statements on one node, then query, and returns the first
// column of its first row.
func sqlOn(t *testing.T, dsn string, stmts []string, query string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, st := range stmts {
		if _, err := conn.Exec(ctx, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	var out string
	if err := conn.QueryRow(ctx, query).Scan(&out); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// A standby rebuilt with --from-backup restores the newest backup,
// replays the archive and streams from the primary: it has the rows
// written after the backup, and the history says it came from the
// repository, not from a clone of the primary.
func TestReinitFromBackupMakesAStreamingStandby(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 2}))
	leader := c.Leader()
	victim := others(c.Layout.Nodes, leader)[0]
	c.WaitFor(victim+" streaming", 60*time.Second, streamingFrom(leader, victim))

	sqlOn(t, c.NodeDSN(leader), []string{`CREATE TABLE before_backup AS SELECT g AS i FROM generate_series(1, 50000) g`}, `SELECT 'ok'`)
	out, err := exec.Command(c.Exe, "backup", "full", "-c", c.Layout.ConfigPath(leader), "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("backup full: %v\n%s", err, out)
	}
	// Written after the backup: reaches the rebuilt standby through the
	// archive (switched segment) and then streaming (the rest).
	sqlOn(t, c.NodeDSN(leader), []string{`CREATE TABLE after_backup AS SELECT g AS i FROM generate_series(1, 1000) g`}, `SELECT pg_walfile_name(pg_switch_wal())`)
	sqlOn(t, c.NodeDSN(leader), []string{`INSERT INTO after_backup SELECT g FROM generate_series(1001, 2000) g`}, `SELECT 'ok'`)

	began := time.Now()
	ctl(t, c, "reinit", victim, "--from-backup", "--yes")
	c.WaitFor(victim+" streaming after reinit --from-backup", 120*time.Second, streamingFrom(leader, victim))
	t.Logf("%s rebuilt from the repository and streaming after %s", victim, time.Since(began).Round(time.Millisecond))

	events := history(t, c)
	if !hasEvent(events, victim, ha.RestoreStandby, began) {
		t.Fatalf("no successful restore-standby step of %s in the history: %v", victim, events)
	}
	if hasEvent(events, victim, ha.Reinit, began) {
		t.Fatalf("%s was cloned from the primary although --from-backup was given", victim)
	}
	aside, _ := filepath.Glob(filepath.Join(c.Layout.NodeDir(victim), "data.failed-*"))
	if len(aside) != 1 {
		t.Fatalf("old data directory not kept aside: %v", aside)
	}
	if _, err := os.Stat(filepath.Join(aside[0], "PG_VERSION")); err != nil {
		t.Fatalf("the copy kept aside is not the old data directory: %v", err)
	}
	var got string
	var last error
	c.WaitFor("rows written after the backup on "+victim, 30*time.Second, func(status.Report) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.NodeDSN(victim))
		if err != nil {
			last = err
			return false
		}
		defer conn.Close(ctx)
		last = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM before_backup)::text || '/' || (SELECT count(*) FROM after_backup)::text`).Scan(&got)
		return last == nil && got == "50000/2000"
	})
	if got != "50000/2000" {
		t.Fatalf("rows on %s = %q (last error %v), want 50000/2000", victim, got, last)
	}
}

// Without a repository on the node, --from-backup is refused up front with
// what to do, and nothing is requested.
func TestReinitFromBackupWithoutRepositoryIsRefused(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Nodes: 2})
	leader := c.Leader()
	victim := others(c.Layout.Nodes, leader)[0]
	c.WaitFor(victim+" streaming", 60*time.Second, streamingFrom(leader, victim))
	out, err := exec.Command(c.Exe, "ctl", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml"), "reinit", victim, "--from-backup", "--yes").CombinedOutput()
	if err == nil {
		t.Fatalf("reinit --from-backup on a node without a repository succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "no backup repository") || !strings.Contains(string(out), "repository.url") {
		t.Fatalf("refusal does not say what is missing and what to do:\n%s", out)
	}
	for _, e := range history(t, c) {
		if e.Action == ha.EventReinitRequest {
			t.Fatalf("a refused reinit was requested anyway: %+v", e)
		}
	}
}

// A whole-cluster restore to a point in time: the primary restores and
// opens on a new timeline with exactly the rows committed before the
// target, every other node is rebuilt from the same backup and streams
// from it, and a restore that cannot reach its target leaves the cluster
// as it was.
func TestRestoreClusterToAPointInTime(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{}))
	leader := c.Leader()
	standbys := others(c.Layout.Nodes, leader)
	c.WaitFor("standbys streaming", 60*time.Second, streamingFrom(leader, standbys...))
	dsn := c.NodeDSN(leader)
	sqlOn(t, dsn, []string{`CREATE TABLE rows (batch int, i int)`, `INSERT INTO rows SELECT 1, g FROM generate_series(1, 1000) g`}, `SELECT 'ok'`)
	if out, err := exec.Command(c.Exe, "backup", "full", "-c", c.Layout.ConfigPath(leader), "-o", "json").CombinedOutput(); err != nil {
		t.Fatalf("backup full: %v\n%s", err, out)
	}
	sqlOn(t, dsn, []string{`INSERT INTO rows SELECT 2, g FROM generate_series(1, 500) g`}, `SELECT 'ok'`)
	target := sqlOn(t, dsn, nil, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'`)
	// No WAL switch here: the target is in the segment being written, which
	// the restore itself must get into the archive.
	sqlOn(t, dsn, []string{`INSERT INTO rows SELECT 3, g FROM generate_series(1, 200) g`}, `SELECT 'ok'`)
	// A second backup after the target: after the restore it lies on the
	// abandoned timeline, and no rebuild may pick it.
	if out, err := exec.Command(c.Exe, "backup", "full", "-c", c.Layout.ConfigPath(leader), "-o", "json").CombinedOutput(); err != nil {
		t.Fatalf("second backup full: %v\n%s", err, out)
	}
	timeline := func(node string) string {
		return sqlOn(t, c.NodeDSN(node), nil, `SELECT timeline_id::text FROM pg_control_checkpoint()`)
	}
	before := timeline(leader)

	// A target no backup reaches: refused by the restoring agent, nothing lost.
	cmd := exec.Command(c.Exe, "ctl", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml"), "restore-cluster", "--time", "2001-01-01 00:00:00+00", "--yes", "--timeout", "2m")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "did not happen") {
		t.Fatalf("restore-cluster to a time before every backup: err %v\n%s", err, out)
	}
	t.Logf("refused as expected: %s", strings.TrimSpace(string(out)))
	c.WaitFor("cluster back as it was", 90*time.Second, streamingFrom(leader, standbys...))
	if got := sqlOn(t, dsn, nil, `SELECT count(*)::text FROM rows`); got != "1700" {
		t.Fatalf("after a failed cluster restore the primary has %s rows, want 1700", got)
	}

	began := time.Now()
	ctl(t, c, "restore-cluster", "--time", target, "--yes", "--timeout", "3m")
	t.Logf("whole cluster restored to %s and every standby streaming after %s", target, time.Since(began).Round(time.Millisecond))
	r := c.WaitFor("restored cluster healthy", 60*time.Second, streamingFrom(leader, standbys...))
	if r.Leader != leader {
		t.Fatalf("leader after the restore = %s, want %s", r.Leader, leader)
	}
	for _, n := range c.Layout.Nodes {
		var got string
		c.WaitFor("restored rows on "+n, 30*time.Second, func(status.Report) bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, c.NodeDSN(n))
			if err != nil {
				return false
			}
			defer conn.Close(ctx)
			return conn.QueryRow(ctx, `SELECT string_agg(batch || ':' || n, ' ' ORDER BY batch) FROM (SELECT batch, count(*) n FROM rows GROUP BY batch) s`).Scan(&got) == nil && got == "1:1000 2:500"
		})
		if got != "1:1000 2:500" {
			t.Fatalf("rows on %s after the restore: %q, want batches 1:1000 2:500 (batch 3 came after the target)", n, got)
		}
	}
	if after := timeline(leader); after <= before {
		t.Fatalf("restored primary on timeline %s, want above %s", after, before)
	}
	events := history(t, c)
	if !hasEvent(events, leader, ha.EventClusterRestore, began) {
		t.Fatalf("no successful cluster-restore in the history: %v", events)
	}
	for _, n := range standbys {
		if !hasEvent(events, n, ha.RestoreStandby, began) {
			t.Fatalf("%s was not rebuilt from the backup: %v", n, events)
		}
	}
	// The data directory from before the restore is kept under its own name.
	kept, _ := filepath.Glob(filepath.Join(c.Layout.NodeDir(leader), "data.before-restore-*", "PG_VERSION"))
	if len(kept) != 1 {
		t.Fatalf("the primary's data directory from before the restore was not kept: %v", kept)
	}
	// The primary's auto.conf no longer carries the recovery target.
	auto, err := os.ReadFile(filepath.Join(c.Layout.NodeDir(leader), "data", "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(auto), "recovery_target_time") {
		t.Fatalf("recovery target left in the restored primary's postgresql.auto.conf:\n%s", auto)
	}
	// A later rebuild from a backup picks the backup on the restored
	// timeline's history, not the newer one of the abandoned timeline.
	ctl(t, c, "reinit", standbys[0], "--from-backup", "--yes")
	c.WaitFor(standbys[0]+" streaming after a rebuild from backup", 60*time.Second, streamingFrom(leader, standbys...))
}
