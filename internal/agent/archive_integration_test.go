package agent_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func archivedWAL(t *testing.T, c *testcluster.Cluster) []string {
	t.Helper()
	ctx := context.Background()
	be, err := storage.NewLocal(c.RepoDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := repo.KeyFile(c.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, key, repo.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	names, err := r.ListWAL(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// switchWAL writes a row and switches to a new WAL segment on the
// primary, retrying while a new primary is still coming up.
func switchWAL(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	var seg string
	var last error
	c.WaitFor("a WAL switch on the primary", 30*time.Second, func(status.Report) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.Layout.DSN())
		if err != nil {
			last = err
			return false
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS arch (i int); INSERT INTO arch VALUES (1)`); err != nil {
			last = err
			return false
		}
		last = conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg)
		return last == nil
	})
	return seg
}

// Every node archives when it is primary: WAL of the first timeline before
// a failover, and after it the new timeline's history file and segments.
func TestWALArchivingGoesOnAfterFailover(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{}))
	old := c.Leader()
	seg1 := switchWAL(t, c)
	c.WaitFor("segment "+seg1+" archived", 30*time.Second, func(status.Report) bool { return slices.Contains(archivedWAL(t, c), seg1) })

	// restore_command calls each standby's agent answered so far (the
	// standby's start asks for history files too).
	before := map[string]float64{}
	for _, n := range c.Layout.Nodes {
		if n != old {
			before[n] = restoreServed(t, c, n)
		}
	}
	c.KillNode(old)
	r := c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	// The promotion's restore_command calls (the next timeline's history
	// file at least, which the archive lacks) were answered by the new
	// primary's agent through pgguard-wal, not by a pgguard process each,
	// and none failed.
	var after float64
	waitMetrics(t, c, r.Leader, 10*time.Second, func(s scrape) string {
		if n, ok := s.value("pgguard_restore_command_served_total", "answer", "error"); ok && n > 0 {
			t.Fatalf("%s's agent answered %v restore_command calls with an error", r.Leader, n)
		}
		after = restoreServedIn(s)
		if after <= before[r.Leader] {
			return fmt.Sprintf("restore_command calls %s's agent answered: %v before the failover, %v after", r.Leader, before[r.Leader], after)
		}
		return ""
	})
	seg2 := switchWAL(t, c)
	c.WaitFor("the new timeline archived", 30*time.Second, func(status.Report) bool {
		names := archivedWAL(t, c)
		return slices.Contains(names, seg2) && slices.Contains(names, "00000002.history")
	})
	t.Logf("archived before failover: %s; after: %s and 00000002.history; restore_command calls %s's agent answered: %v before the failover, %v after",
		seg1, seg2, r.Leader, before[r.Leader], after)
}

// restoreServed is how many restore_command calls node's agent answered
// (found or missing).
func restoreServed(t *testing.T, c *testcluster.Cluster, node string) float64 {
	t.Helper()
	s, err := scrapeMetrics(c, node)
	if err != nil {
		t.Fatal(err)
	}
	return restoreServedIn(s)
}

func restoreServedIn(s scrape) float64 {
	found, _ := s.value("pgguard_restore_command_served_total", "answer", "found")
	missing, _ := s.value("pgguard_restore_command_served_total", "answer", "missing")
	return found + missing
}
