package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/drill"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// A drill of a good backup passes every check; after one byte of a pack is
// flipped, the drill of the same backup fails and says why.
func TestDrillPassesOnAGoodBackupAndFailsOnACorruptOne(t *testing.T) {
	c, ctx, conn := testcluster.StartRepoNode(t, 30*time.Second)
	if _, err := conn.Exec(ctx, `CREATE TABLE drilled AS SELECT g AS id FROM generate_series(1, 5000) g`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	cfg := c.Layout.ConfigPath(c.Layout.Nodes[0])
	if out, err := exec.Command(c.Exe, "backup", "full", "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}

	out, err := exec.Command(c.Exe, "drill", "-c", cfg, "-o", "json", "--check", "SELECT count(*) FROM drilled=5000").CombinedOutput()
	if err != nil {
		t.Fatalf("drill of a good backup failed: %v\n%s", err, out)
	}
	var res drill.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("drill output: %v\n%s", err, out)
	}
	if !res.Passed || len(res.Checks) != 3 {
		t.Fatalf("drill result: %+v", res)
	}
	t.Logf("good backup: drill passed in %.1fs (restore %.1fs, open %.1fs, checks %.1fs)", res.TotalSeconds, res.RestoreSeconds, res.OpenSeconds, res.CheckSeconds)
	leftovers, _ := filepath.Glob(filepath.Join(c.Layout.NodeDir(c.Layout.Nodes[0]), "drill", "drill-*"))
	if len(leftovers) > 0 {
		t.Fatalf("the scratch instance was not removed: %v", leftovers)
	}

	// Flip one byte in the middle of the largest pack.
	var biggest string
	var size int64
	_ = filepath.WalkDir(filepath.Join(c.RepoDir(), "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, _ := d.Info(); fi != nil && fi.Size() > size {
				biggest, size = p, fi.Size()
			}
		}
		return nil
	})
	data, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(biggest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(c.Exe, "drill", "-c", cfg, "--check", "SELECT count(*) FROM drilled=5000").CombinedOutput()
	if err == nil {
		t.Fatalf("drill of a corrupt backup passed:\n%s", out)
	}
	if !strings.Contains(string(out), "FAILED") || !strings.Contains(string(out), "restore") {
		t.Fatalf("drill failure does not say why:\n%s", out)
	}
	t.Logf("corrupt backup: %s", strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
}

// A drill of a backup taken from a primary that names synchronous
// standbys finishes: the restored copy has none, and its first commit
// (pg_amcheck's CREATE EXTENSION) must not wait for one.
func TestDrillOfASynchronousPrimaryDoesNotWaitForStandbys(t *testing.T) {
	c, ctx, conn := testcluster.StartRepoNode(t, 30*time.Second)
	// In the configuration files only (no reload): this node keeps
	// committing, the backup carries the setting.
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (nobody)'`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	cfg := c.Layout.ConfigPath(c.Layout.Nodes[0])
	if out, err := exec.Command(c.Exe, "backup", "full", "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(dctx, c.Exe, "drill", "-c", cfg)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if dctx.Err() != nil {
		t.Fatalf("the drill did not finish within 120 s (a commit waiting for a synchronous standby?):\n%s", out)
	}
	if err != nil {
		t.Fatalf("drill failed: %v\n%s", err, out)
	}
}
