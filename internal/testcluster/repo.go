package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
)

// RepoDir is the backup repository of a cluster made WithBackupRepo.
func (c *Cluster) RepoDir() string { return filepath.Join(c.Layout.Dir, "repo") }

// KeyFile is the repository key file of a cluster made WithBackupRepo.
func (c *Cluster) KeyFile() string { return filepath.Join(c.Layout.Dir, "repo.key") }

// WithBackupRepo gives every node a local backup repository under the
// cluster directory (with a key file) and WAL archiving into it, and
// initialises the repository before the agents start.
func WithBackupRepo(o ClusterOptions) ClusterOptions {
	edit := o.Edit
	o.Edit = func(cfg *config.Config) {
		dir := filepath.Dir(filepath.Dir(cfg.Postgres.DataDir))
		cfg.Repository.URL = "file://" + filepath.Join(dir, "repo")
		cfg.Repository.KeyFile = filepath.Join(dir, "repo.key")
		cfg.Archive.Enabled = true
		if edit != nil {
			edit(cfg)
		}
	}
	before := o.BeforeStart
	o.BeforeStart = func(c *Cluster) {
		t := c.t
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		if err := os.WriteFile(c.KeyFile(), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(c.Exe, "repo", "init", "-c", c.Layout.ConfigPath(c.Layout.Nodes[0])).CombinedOutput()
		if err != nil {
			t.Fatalf("repo init: %v\n%s", err, out)
		}
		acct, _ := osuser.Resolve("")
		for _, p := range []string{c.KeyFile(), c.RepoDir()} {
			if err := acct.ChownTree(p); err != nil {
				t.Fatal(err)
			}
		}
		if before != nil {
			before(c)
		}
	}
	return o
}

// StartShipped starts a cluster as `pgguard demo up` ships it: WAL
// archived into a backup repository (WithBackupRepo) and, once it is
// healthy, the demo's default jobs installed (a first full backup at
// once, a drill three minutes later, the daily and hourly schedule).
// Benchmarks and HA tests start this unless they are about something else.
func StartShipped(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	c := StartCluster(t, WithBackupRepo(o))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Layout.InstallJobs(ctx, time.Now()); err != nil {
		t.Fatalf("install the demo's default jobs: %v", err)
	}
	return c
}

// StartRepoNode starts a one-node cluster WithBackupRepo and connects to
// its primary: the setup of the tests of the backup, restore and job
// commands. The context ends after timeout; the connection is closed at
// cleanup (closing it earlier is harmless).
func StartRepoNode(t testing.TB, timeout time.Duration) (*Cluster, context.Context, *pgx.Conn) {
	t.Helper()
	c := StartCluster(t, WithBackupRepo(ClusterOptions{Nodes: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	conn, err := pgx.Connect(ctx, c.Layout.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return c, ctx, conn
}
