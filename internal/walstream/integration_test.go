package walstream_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	pgguard(t, c, "restore", "-c", c.Layout.ConfigPath(leader), "--target-dir", target, "--standby", "--archive-mode", "off")
	// A standby of nobody (its primary is gone with the cluster) that
	// replays the archive: a direct child of the test.
	// The copy keeps the cluster's password rules; the test reads it
	// without the cluster's password.
	if err := os.WriteFile(filepath.Join(target, "pg_hba.conf"), []byte("host all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: target})

	// A standby replays what the archive has and goes on asking: poll
	// until the writes are there, and report the last count seen.
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
