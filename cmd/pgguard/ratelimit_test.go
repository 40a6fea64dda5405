package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// A backup limited to 2 MiB/s of repository transfer stores incompressible
// data at that rate, within 10 %.
func TestRateLimitedBackupKeepsToTheLimit(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.Layout.DSN())
	if err != nil {
		t.Fatal(err)
	}
	// About 32 MiB of random bytes: nothing for zstd to squeeze.
	if _, err := conn.Exec(ctx, `CREATE TABLE noise AS
		SELECT g AS id, decode(string_agg(md5(random()::text), ''), 'hex') AS b
		FROM generate_series(1, 16000) g, generate_series(1, 128) h GROUP BY g`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	const limit = 2 << 20
	cfg := c.Layout.ConfigPath("n1")
	out, err := exec.Command(c.Exe, "backup", "full", "-c", cfg, "-o", "json", "--rate-limit", "2MiB").Output()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	var res, base struct {
		StoredSize int64   `json:"stored_size"`
		Seconds    float64 `json:"seconds"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("backup output: %v\n%s", err, out)
	}
	// The same backup again stores next to nothing: its duration is the
	// fixed cost (checkpoint, start/stop, waiting for the WAL archive),
	// which is not transfer time.
	out, err = exec.Command(c.Exe, "backup", "full", "-c", cfg, "-o", "json").Output()
	if err != nil {
		t.Fatalf("baseline backup: %v\n%s", err, out)
	}
	if err := json.Unmarshal(out, &base); err != nil {
		t.Fatalf("backup output: %v\n%s", err, out)
	}
	transfer := res.Seconds - base.Seconds
	rate := float64(res.StoredSize) / transfer
	t.Logf("stored %.1f MiB in %.2fs (%.2fs of it fixed cost): %.2f MiB/s against a 2 MiB/s limit",
		float64(res.StoredSize)/(1<<20), res.Seconds, base.Seconds, rate/(1<<20))
	if res.StoredSize < 8<<20 {
		t.Fatalf("only %d bytes stored: the data was meant to be incompressible", res.StoredSize)
	}
	if rate < 0.9*limit || rate > 1.1*limit {
		t.Fatalf("measured %.2f MiB/s, not within 10%% of 2 MiB/s", rate/(1<<20))
	}
	// Bad rate syntax is refused before anything is written.
	if out, err := exec.Command(c.Exe, "backup", "full", "-c", cfg, "--rate-limit", "fast").CombinedOutput(); err == nil {
		t.Fatalf("--rate-limit fast accepted:\n%s", out)
	}
}
