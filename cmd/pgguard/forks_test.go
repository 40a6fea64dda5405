package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// A fork whose programs are renamed (KingbaseES: sys_rewind,
// sys_basebackup, ...): bin_dir holds only the renamed programs, and
// postgresql.programs maps PostgreSQL's names to them. A cluster, its
// standby's clone, full and incremental backups, a drill and a logical
// backup and restore all run through them (issue 14 item 10). Each renamed
// program is a wrapper that records its use and runs PostgreSQL's own.
func TestRenamedProgramsOfAFork(t *testing.T) {
	real := config.DetectBinDir()
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	used := filepath.Join(dir, "used")
	if err := os.WriteFile(used, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(used, 0o666)
	programs := map[string]string{}
	for _, name := range pgbin.Names {
		renamed := "sys_" + strings.TrimPrefix(name, "pg_")
		script := "#!/bin/sh\necho " + renamed + " >> " + used + "\nexec " + filepath.Join(real, name) + ` "$@"` + "\n"
		if err := os.WriteFile(filepath.Join(dir, renamed), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		programs[name] = renamed
	}
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 2, Edit: func(cfg *config.Config) {
		cfg.Postgres.BinDir, cfg.Postgres.Programs = dir, programs
	}}))
	primary := c.Leader()
	cfg := c.Layout.ConfigPath(primary)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(c.Exe, append(args, "-c", cfg)...).CombinedOutput(); err != nil {
			t.Fatalf("pgguard %v: %v\n%s", args, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.NodeDSN(primary))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE forked AS SELECT g AS id FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	run("backup", "full")
	if _, err := conn.Exec(ctx, `INSERT INTO forked SELECT g FROM generate_series(1001, 2000) g; CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	run("backup", "incr")
	run("drill", "--check", "SELECT count(*) FROM forked=2000")
	run("backup", "logical", "--db", "postgres", "--table", "forked")
	run("restore", "logical", "--db", "postgres", "--table", "forked", "--into", "forked_copy")

	data, _ := os.ReadFile(used)
	// (sys_controldata and sys_rewind run only when a node must be
	// repaired after a failover.)
	for _, want := range []string{"sys_initdb", "sys_postgres", "sys_basebackup", "sys_waldump", "sys_amcheck", "sys_dump", "sys_restore"} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("%s was never run; ran:\n%s", want, data)
		}
	}
	seen := map[string]int{}
	for _, l := range strings.Fields(string(data)) {
		seen[l]++
	}
	t.Logf("renamed programs run: %v", seen)
}
