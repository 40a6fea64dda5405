package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func TestZZProfileFull(t *testing.T) {
	if os.Getenv("PGGUARD_PROFILE") == "" {
		t.Skip("set PGGUARD_PROFILE=1: manual profiling aid")
	}
	pg := testcluster.StartPostgres(t, testcluster.PGOptions{})
	pg.Pgbench(t, "-i", "-s", "30", "-q")
	pg.Exec(t, "CHECKPOINT")
	be, _ := storage.NewLocal(filepath.Join(t.TempDir(), "repo"))
	r, err := repo.Init(context.Background(), be, repo.KeyBytes(make([]byte, 32)), repo.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create("/tmp/cpu.prof")
	pprof.StartCPUProfile(f)
	start := time.Now()
	res, err := backup.Run(context.Background(), backup.Options{Repo: r, ConnString: pg.ConnString(), Kind: repo.KindFull, Channels: 2})
	pprof.StopCPUProfile()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full: %s, read %d stored %d", time.Since(start), res.Source.BytesRead, res.Stored.BytesNew)
	pg.Pgbench(t, "-c", "4", "-T", "20", "-n")
	f, _ = os.Create("/tmp/cpu-incr.prof")
	pprof.StartCPUProfile(f)
	start = time.Now()
	res, err = backup.Run(context.Background(), backup.Options{Repo: r, ConnString: pg.ConnString(), Kind: repo.KindIncr, Channels: 2, Progress: progress.NewJSON(os.Stderr, time.Second, time.Now)})
	pprof.StopCPUProfile()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("incr: %s, read %d stored %d walmap %v %d %s", time.Since(start), res.Source.BytesRead, res.Stored.BytesNew, res.Source.WALMapUsed, res.Source.WALMapBlocks, res.Source.WALMapFallback)
}
