package pg_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// TestReplayTimelineOfAStandbyThatCannotFollow builds the state the chaos
// suite found (chaos/FINDINGS.md, item 10) with plain PostgreSQL servers: a
// standby T replays timeline 2 of a primary S that was promoted and then
// abandoned, and is pointed at U, promoted on timeline 3 from timeline 1.
// PostgreSQL refuses to follow ("new timeline 3 is not a child of database
// system timeline 2"); ReplayTimelineAt must still say 2, whatever the WAL
// receiver reports, because that is what tells the agent to rewind T.
func TestReplayTimelineOfAStandbyThatCannotFollow(t *testing.T) {
	ctx := context.Background()
	p := testcluster.StartPostgres(t, testcluster.PGOptions{})
	p.Exec(t, "CREATE TABLE t (id int)")
	s := standbyOf(t, p)
	u := standbyOf(t, p)
	tt := standbyOf(t, p)
	p.Exec(t, "INSERT INTO t VALUES (1)")
	for _, sb := range []*testcluster.Postgres{s, u, tt} {
		waitRows(t, sb, 1)
	}

	// S becomes a primary on timeline 2 and T follows it there.
	s.Exec(t, "SELECT pg_promote()")
	sc := s.Connect(t)
	testcluster.WaitUntil(t, 30*time.Second, "S out of recovery", func() (bool, string) {
		var rec bool
		err := sc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
		return err == nil && !rec, fmt.Sprintf("in recovery %v, err %v", rec, err)
	})
	s.Exec(t, "INSERT INTO t VALUES (2)")
	repoint(t, tt, s)
	waitRows(t, tt, 2)
	if tli, err := pg.ReplayTimelineAt(ctx, tt.ConnString()); err != nil || tli != 2 {
		t.Fatalf("replay timeline of T following S: %d (err %v), want 2", tli, err)
	}

	// U is promoted from timeline 1 onto timeline 3 (a history file for 2
	// in its pg_wal makes it skip 2, as pgguard's timeline reservation
	// does), so timeline 2 is not in U's history.
	hist := fmt.Sprintf("1\t0/%X\tskipped by the test\n", 0x1000000)
	if err := os.WriteFile(filepath.Join(u.DataDir(), "pg_wal", "00000002.history"), []byte(hist), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := u.Account().ChownTree(filepath.Join(u.DataDir(), "pg_wal")); err != nil {
		t.Fatal(err)
	}
	u.Exec(t, "SELECT pg_promote()")
	uc := u.Connect(t)
	testcluster.WaitUntil(t, 30*time.Second, "U on timeline 3", func() (bool, string) {
		var wal string
		err := uc.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&wal)
		return err == nil && strings.HasPrefix(wal, "00000003"), fmt.Sprintf("current WAL file %q, err %v", wal, err)
	})
	u.Exec(t, "INSERT INTO t VALUES (3)")

	repoint(t, tt, u)
	testcluster.WaitUntil(t, 30*time.Second, "T refusing U's timeline", func() (bool, string) {
		log := tt.LogTail(64 << 10)
		return strings.Contains(log, "new timeline 3 is not a child of database system timeline 2"), lastLines(log, 5)
	})
	tc := tt.Connect(t)
	st, err := pg.Probe(ctx, tc)
	if err != nil {
		t.Fatal(err)
	}
	tli, err := pg.ReplayTimelineAt(ctx, tt.ConnString())
	if err != nil || tli != 2 {
		t.Fatalf("replay timeline of T refusing U's timeline: %d (err %v), want 2; the probe saw timeline %d (receiver %d, restartpoint %d), streaming %v",
			tli, err, st.Timeline, st.ReceiveTimeline, st.CheckpointTimeline, st.Streaming)
	}
	var n int
	if err := tc.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("T has %d rows (err %v), want the 2 of timeline 2: it must not have replayed U's row", n, err)
	}
	t.Logf("T: replay timeline %d; the probe saw timeline %d (receiver %d, restartpoint %d), streaming %v",
		tli, st.Timeline, st.ReceiveTimeline, st.CheckpointTimeline, st.Streaming)
}

// standbyOf starts a streaming standby of src from a fresh base backup.
func standbyOf(t *testing.T, src *testcluster.Postgres) *testcluster.Postgres {
	t.Helper()
	base, err := os.MkdirTemp("", "pgguard-standby-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil { // the postgres account must reach the data directory
		t.Fatal(err)
	}
	dir := filepath.Join(base, "data")
	out, err := exec.Command(filepath.Join(testcluster.PGBinDir, "pg_basebackup"), "-d", src.ConnString(),
		"-D", dir, "-X", "stream", "-R", "--no-sync").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	// wal_keep_size: a standby promoted here keeps the WAL its sibling
	// standbys still need. Without it a checkpoint (a base backup's
	// start) removed the segment a restarted sibling was about to stream
	// again, which it then asked for forever ("requested WAL segment …
	// has already been removed"; CI, 2026-12-05).
	return testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: dir,
		Conf: []string{"recovery_target_timeline = 'latest'", "wal_retrieve_retry_interval = '200ms'", "wal_keep_size = '256MB'"}})
}

// repoint makes standby stream from src instead.
func repoint(t *testing.T, standby, src *testcluster.Postgres) {
	t.Helper()
	standby.Exec(t, fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=%d user=postgres'", src.Port()))
	standby.Exec(t, "SELECT pg_reload_conf()")
}

func waitRows(t *testing.T, p *testcluster.Postgres, want int) {
	t.Helper()
	conn := p.Connect(t)
	testcluster.WaitUntil(t, 30*time.Second, fmt.Sprintf("%d rows replayed", want), func() (bool, string) {
		var n int
		err := conn.QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n)
		if err == nil && n == want {
			return true, ""
		}
		return false, fmt.Sprintf("%d rows, err %v; server log tail:\n%s", n, err, p.LogTail(3000))
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
