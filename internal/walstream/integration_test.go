package walstream_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// waitStreaming waits until node's PostgreSQL has the WAL stream
// connected (pg_stat_replication shows pgguard_archive streaming).
func waitStreaming(t *testing.T, c *testcluster.Cluster, node string) {
	t.Helper()
	var last string
	c.WaitFor("the WAL stream on "+node, 60*time.Second, func(status.Report) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.NodeDSN(node))
		if err != nil {
			last = err.Error()
			return false
		}
		defer conn.Close(ctx)
		err = conn.QueryRow(ctx, `SELECT coalesce(string_agg(state, ','), 'no row') FROM pg_stat_replication WHERE application_name = 'pgguard_archive'`).Scan(&last)
		return err == nil && last == "streaming"
	})
	_ = last
}

// pgguard runs the binary and fails the test with its output on error.
func pgguard(t *testing.T, c *testcluster.Cluster, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.Exe, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pgguard %v: %v\n%s", args, err, out)
	}
	return string(out)
}

type ack struct {
	id int
	at time.Time
}

// The streaming archive's RPO (issue 16): during a write load every node
// of the cluster is killed at once (agents and postmasters, SIGKILL); the
// newest backup restored from the repository alone, with the WAL the
// stream stored (the tail of the last segment included), must hold every
// write acknowledged more than 1 s before the kill.
func TestEveryWriteAcknowledgedASecondBeforeTheWholeClusterIsLostIsRestored(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{}))
	leader := c.Leader()
	waitStreaming(t, c, leader)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.NodeDSN(leader))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE rpo (id int PRIMARY KEY, at timestamptz DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	pgguard(t, c, "backup", "full", "-c", c.Layout.ConfigPath(leader))

	var (
		mu   sync.Mutex
		acks []ack
	)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for id := 1; ; id++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := conn.Exec(ctx, `INSERT INTO rpo (id) VALUES ($1)`, id); err != nil {
				done <- err
				return
			}
			mu.Lock()
			acks = append(acks, ack{id, time.Now()})
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // pacing of the load, not a wait for state
		}
	}()
	// Six seconds of writes: whatever segment they are in, the last ones
	// reach the repository only as a tail (the load is far below a
	// segment a second).
	load := time.NewTimer(6 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("write load failed before the kill: %v", err)
	case <-load.C:
	}
	killAt := time.Now()
	testcluster.KillNodes(c.Layout, c.Layout.Nodes, 20*time.Second)
	close(stop)
	<-done // the connection failed or the loop saw stop
	mu.Lock()
	acked := append([]ack(nil), acks...)
	mu.Unlock()
	var must []int
	for _, a := range acked {
		if a.at.Before(killAt.Add(-time.Second)) {
			must = append(must, a.id)
		}
	}
	if len(must) == 0 {
		t.Fatalf("no write acknowledged more than 1 s before the kill (%d in all): the load did not run", len(acked))
	}

	// The repository alone: a new directory, nothing of the nodes.
	target := filepath.Join(c.Layout.Dir, "restored")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := testcluster.Account(t).ChownTree(target); err != nil {
		t.Fatal(err)
	}
	pgguard(t, c, "restore", "-c", c.Layout.ConfigPath(leader), "--target-dir", target, "--latest", "--archive-mode", "off")
	// A recovery to the end of the archive (recovery.signal: the only
	// kind of server wal-fetch gives the stream's tail to; a standby
	// never gets one), then open: a direct child of the test.
	// The copy keeps the cluster's password rules; the test reads it
	// without the cluster's password.
	if err := os.WriteFile(filepath.Join(target, "pg_hba.conf"), []byte("host all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: target})

	// Poll until the recovery has opened the copy with the writes, and
	// report the last count seen.
	want := must[len(must)-1]
	var (
		got, maxID int
		last       string
	)
	dsn := restored.ConnString()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		rc, err := pgx.Connect(rctx, dsn)
		if err == nil {
			err = rc.QueryRow(rctx, `SELECT count(*) FILTER (WHERE id <= $1), coalesce(max(id), 0) FROM rpo`, want).Scan(&got, &maxID)
			rc.Close(rctx)
		}
		rcancel()
		if err != nil {
			last = err.Error()
		} else if got == len(must) {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling interval, with a deadline
	}
	lastAck := acked[len(acked)-1]
	t.Logf("acknowledged %d writes, the last %s after the kill began; %d more than 1 s before it; restored rows up to id %d (of %d acknowledged)",
		len(acked), lastAck.at.Sub(killAt).Round(time.Millisecond), len(must), maxID, lastAck.id)
	if got != len(must) {
		t.Fatalf("restored %d of the %d writes acknowledged more than 1 s before the kill (ids 1..%d); newest restored id %d; last error %q",
			got, len(must), want, maxID, last)
	}
	for _, a := range acked {
		if a.id == maxID {
			t.Logf("the newest restored write was acknowledged %s before the kill", killAt.Sub(a.at).Round(time.Millisecond))
		}
	}
}

// archived lists the WAL objects of the cluster's repository (names
// under wal/<timeline>/), read from the storage without the key.
func archived(t *testing.T, c *testcluster.Cluster) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	dirs, _ := os.ReadDir(filepath.Join(c.RepoDir(), "wal"))
	for _, d := range dirs {
		files, _ := os.ReadDir(filepath.Join(c.RepoDir(), "wal", d.Name()))
		for _, f := range files {
			out[f.Name()] = true
		}
	}
	return out
}

// query runs one query on node and scans one row.
func query(t *testing.T, c *testcluster.Cluster, node, sql string, dest ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.NodeDSN(node))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// archiverCounts is pg_stat_archiver's archived and failed counts.
func archiverCounts(t *testing.T, c *testcluster.Cluster, node string) (archivedN, failedN int64, last string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.NodeDSN(node))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT archived_count, failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver`).Scan(&archivedN, &failedN, &last); err != nil {
		t.Fatal(err)
	}
	return archivedN, failedN, last
}

// archive_command confirms what the stream stored without opening the
// repository (its key is unreadable meanwhile, so a push that opened it
// would fail); without a record from the stream wal-push still archives;
// and after a switchover the new primary's stream stores the new
// timeline's history file and segments.
func TestArchiveCommandConfirmsTheStreamAndTheStreamFollowsASwitchover(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 2}))
	old := c.Leader()
	waitStreaming(t, c, old)

	// What the stream does not carry (the base backups' .backup history
	// files) is pushed by opening the repository: let the archiver finish
	// those before the key goes, or one would stay first in its queue.
	var ready int
	c.WaitFor("the archiver's queue empty", 30*time.Second, func(status.Report) bool {
		return query(t, c, old, `SELECT count(*)::int FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'`, &ready) == nil && ready == 0
	})

	// (1) The key hidden: only the stream's records can answer, through
	// archive_command's fast path (pgguard-wal, built beside pgguard).
	var archiveCommand string
	if err := query(t, c, old, `SHOW archive_command`, &archiveCommand); err != nil || !strings.Contains(archiveCommand, "/pgguard-wal' wal-push") {
		t.Fatalf("archive_command %q (%v): want pgguard-wal, installed beside pgguard", archiveCommand, err)
	}
	hidden := c.KeyFile() + ".hidden"
	if err := os.Rename(c.KeyFile(), hidden); err != nil {
		t.Fatal(err)
	}
	_, failedBefore, _ := archiverCounts(t, c, old)
	var seg string
	if err := query(t, c, old, `SELECT pg_walfile_name(pg_current_wal_lsn())`, &seg); err != nil {
		t.Fatal(err)
	}
	if err := query(t, c, old, `SELECT pg_switch_wal()::text`, new(string)); err != nil {
		t.Fatal(err)
	}
	var last string
	c.WaitFor("segment "+seg+" archived through the stream's record", 30*time.Second, func(status.Report) bool {
		_, _, last = archiverCounts(t, c, old)
		return last >= seg
	})
	_, failedAfter, _ := archiverCounts(t, c, old)
	if failedAfter != failedBefore {
		t.Fatalf("archive_command failed %d time(s) while the key was unreadable: it opened the repository instead of confirming the stream's copy of %s", failedAfter-failedBefore, seg)
	}
	if !archived(t, c)[seg] {
		t.Fatalf("%s archived by PostgreSQL but not in the repository", seg)
	}
	if err := os.Rename(hidden, c.KeyFile()); err != nil {
		t.Fatal(err)
	}

	// (2) No record (the agent's stream not involved): wal-push opens the
	// repository and pushes, as it did before the stream.
	dir := filepath.Join(c.Layout.Dir, "loose", "pg_wal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "00000009000000000000000A")
	data := make([]byte, 16<<20)
	copy(data, "not WAL, but a segment's size")
	if err := os.WriteFile(loose, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := pgguard(t, c, "wal-push", "-c", c.Layout.ConfigPath(old), "-o", "json", loose)
	if !archived(t, c)["00000009000000000000000A"] {
		t.Fatalf("wal-push without the stream's record did not store the file: %s", out)
	}

	// (3) A switchover: the new primary streams its own timeline.
	sw, err := exec.Command(c.Exe, "ctl", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml"), "switchover", "--yes").CombinedOutput()
	if err != nil {
		t.Fatalf("switchover: %v\n%s", err, sw)
	}
	r := c.WaitFor("a new leader", 60*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	waitStreaming(t, c, r.Leader)
	var cur string
	c.WaitFor("a segment of timeline 2 written", 30*time.Second, func(status.Report) bool {
		return query(t, c, r.Leader, `SELECT pg_walfile_name(pg_current_wal_lsn())`, &cur) == nil && cur[:8] == "00000002"
	})
	if err := query(t, c, r.Leader, `SELECT pg_switch_wal()::text`, new(string)); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the new timeline's history file and "+cur+" in the repository", 30*time.Second, func(status.Report) bool {
		a := archived(t, c)
		return a["00000002.history"] && a[cur]
	})
	var slots string
	if err := query(t, c, old, `SELECT coalesce(string_agg(slot_name, ','), '') FROM pg_replication_slots WHERE slot_name = 'pgguard_archive'`, &slots); err == nil && slots != "" {
		c.WaitFor("the old primary's archive slot dropped", 30*time.Second, func(status.Report) bool {
			return query(t, c, old, `SELECT coalesce(string_agg(slot_name, ','), '') FROM pg_replication_slots WHERE slot_name = 'pgguard_archive'`, &slots) == nil && slots == ""
		})
	}
	t.Logf("confirmed %s without the key; after the switchover %s → %s: 00000002.history and %s stored", seg, old, r.Leader, cur)
}
