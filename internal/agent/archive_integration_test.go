package agent_test

import (
	"context"
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

	c.KillNode(old)
	c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	seg2 := switchWAL(t, c)
	c.WaitFor("the new timeline archived", 30*time.Second, func(status.Report) bool {
		names := archivedWAL(t, c)
		return slices.Contains(names, seg2) && slices.Contains(names, "00000002.history")
	})
	t.Logf("archived before failover: %s; after: %s and 00000002.history", seg1, seg2)
}
