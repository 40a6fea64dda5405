package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// The WAL of a time range is exactly the segments written in it: the first
// archived after its start through the first archived after its end.
func TestRestoreWALOfATimeRange(t *testing.T) {
	c, ctx, conn := testcluster.StartRepoNode(t, 2*time.Minute)
	if _, err := conn.Exec(ctx, `CREATE TABLE batches (b int)`); err != nil {
		t.Fatal(err)
	}
	archived := filepath.Join(c.RepoDir(), "wal", "00000001")
	// batch writes a row, switches segments and waits until the finished
	// segment is archived; it returns that segment's name.
	batch := func(b int) string {
		t.Helper()
		var seg string
		if _, err := conn.Exec(ctx, `INSERT INTO batches VALUES ($1)`, b); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_switch_wal())`).Scan(&seg); err != nil {
			t.Fatal(err)
		}
		c.WaitFor(seg+" archived", 30*time.Second, func(status.Report) bool {
			_, err := os.Stat(filepath.Join(archived, seg))
			return err == nil
		})
		return seg
	}
	batch(0)
	from := time.Now()
	s1, s2 := batch(1), batch(2)
	to := time.Now()
	s3 := batch(3)
	batch(4)

	dir := filepath.Join(t.TempDir(), "wal")
	out, err := exec.Command(c.Exe, "restore", "wal", "-c", c.Layout.ConfigPath("n1"), "--target-dir", dir,
		"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano)).CombinedOutput()
	if err != nil {
		t.Fatalf("restore wal: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{s1, s2, s3}
	if !slices.Equal(got, want) {
		t.Fatalf("restored %v, want exactly %v\n%s", got, want, out)
	}
	// The files are real WAL: pg_waldump reads the first one.
	if out, err := exec.Command(filepath.Join(testcluster.PGBinDir, "pg_waldump"), "-n", "3", filepath.Join(dir, s1)).CombinedOutput(); err != nil {
		t.Fatalf("pg_waldump %s: %v\n%s", s1, err, out)
	}
	// Bad input changes nothing.
	bad := exec.Command(c.Exe, "restore", "wal", "-c", c.Layout.ConfigPath("n1"), "--target-dir", dir, "--from", "yesterday", "--to", "today")
	if out, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("unparsable times accepted:\n%s", out)
	}
}
