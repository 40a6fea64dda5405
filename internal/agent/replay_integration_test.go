package agent_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// startDelayedCluster starts three nodes, delayed replaying 15 s behind and
// not the primary, and returns the cluster and its primary once delayed
// streams.
func startDelayedCluster(t *testing.T, delayed string) (*testcluster.Cluster, string) {
	t.Helper()
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		if cfg.Name == delayed {
			cfg.HA.ApplyDelay = config.Duration(15 * time.Second)
		}
	}})
	if c.Leader() == delayed {
		to := others(c.Layout.Nodes, delayed)[0]
		ctl(t, c, "switchover", "--to", to, "--yes")
		c.WaitFor(to+" primary", 30*time.Second, func(r status.Report) bool { return r.Leader == to })
	}
	c.WaitFor(delayed+" streaming and delayed", 60*time.Second, func(r status.Report) bool {
		m := member(r, delayed)
		return m.Streaming && m.Delayed
	})
	return c, c.Leader()
}

// docs/RECOVER-FROM-A-MISTAKE.md, performed: the rows of a table deleted
// on the primary by mistake are read back from a delayed standby, held
// just before the mistake with ctl replay --until, while the cluster keeps
// running (HA-13, issue 14 item 8). The delayed standby is never a
// switchover candidate. (A DROP TABLE cannot be read back this way: see
// the document.)
func TestRecoverDeletedRowsFromADelayedStandby(t *testing.T) {
	const delayed = "n3"
	c, leader := startDelayedCluster(t, delayed)
	ctlYAML := filepath.Join(c.Layout.Dir, "ctl.yaml")
	if out, _ := exec.Command(c.Exe, "ctl", "-c", ctlYAML, "switchover", "--to", delayed, "--check").CombinedOutput(); !strings.Contains(string(out), "[FAIL] candidate not delayed") {
		t.Fatalf("switchover --check to the delayed standby does not fail on the delay:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary, err := pgx.Connect(ctx, c.NodeDSN(leader))
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(ctx)
	if _, err := primary.Exec(ctx, `CREATE TABLE precious AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	onDelayed := func(sql string, dest ...any) error {
		conn, err := pgx.Connect(ctx, c.NodeDSN(delayed))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.QueryRow(ctx, sql).Scan(dest...)
	}
	// The delayed standby replays the table about 15 s later.
	c.WaitFor("the table on the delayed standby", 60*time.Second, func(status.Report) bool {
		var n int
		return onDelayed(`SELECT count(*) FROM precious`, &n) == nil && n == 1000
	})
	mistake := time.Now()
	if _, err := primary.Exec(ctx, `DELETE FROM precious; CREATE TABLE meanwhile AS SELECT 1 AS x`); err != nil {
		t.Fatal(err)
	}
	ctl(t, c, "replay", delayed, "--until", mistake.UTC().Format(time.RFC3339Nano))
	c.WaitFor(delayed+" held just before the mistake", 60*time.Second, func(status.Report) bool {
		var n int
		var paused bool
		return onDelayed(`SELECT (SELECT count(*) FROM precious), pg_is_wal_replay_paused()`, &n, &paused) == nil && n == 1000 && paused
	})
	// Copy the rows back to the primary, which kept taking writes.
	conn, err := pgx.Connect(ctx, c.NodeDSN(delayed))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT id, v FROM precious ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var back [][]any
	for rows.Next() {
		var id int
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		back = append(back, []any{id, v})
	}
	conn.Close(ctx)
	if n, err := primary.CopyFrom(ctx, pgx.Identifier{"precious"}, []string{"id", "v"}, pgx.CopyFromRows(back)); err != nil || n != 1000 {
		t.Fatalf("copied %d rows back (%v), want 1000", n, err)
	}
	var n int
	if err := primary.QueryRow(ctx, `SELECT count(*) FROM precious`).Scan(&n); err != nil || n != 1000 {
		t.Fatalf("the primary has %d rows of precious back (%v), want 1000", n, err)
	}
	if r, _ := c.Status(); r.Leader != leader {
		t.Fatalf("the leader changed during the recovery: %s, was %s", r.Leader, leader)
	}
	// Withdrawn: the standby goes back to its delayed replay.
	ctl(t, c, "replay", delayed, "--cancel")
	c.WaitFor(delayed+" replaying again", 60*time.Second, func(status.Report) bool {
		var paused bool
		return onDelayed(`SELECT pg_is_wal_replay_paused()`, &paused) == nil && !paused
	})
	t.Logf("%s held at %s; 1000 rows copied back to %s", delayed, fmt.Sprint(mistake.UTC().Format(time.RFC3339Nano)), leader)
}
