package restore

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
)

// BenchmarkRestoreFixture restores the newest backup of a kept run of
// bench/backup (go test ./bench/backup ... -keep logs the directory) into
// a new directory (or backup PGGUARD_BENCH_BACKUP), with
// PGGUARD_BENCH_CHANNELS channels (default 2). It is
// skipped unless PGGUARD_RESTORE_FIXTURE names that directory; with
// -cpuprofile it shows where an incremental's restore spends its CPU.
//
//	PGGUARD_RESTORE_FIXTURE=/tmp/pgguard-bench-123 go test ./internal/restore \
//	    -run '^$' -bench RestoreFixture -benchtime 3x -cpuprofile /tmp/cpu.out
func BenchmarkRestoreFixture(b *testing.B) {
	dir := os.Getenv("PGGUARD_RESTORE_FIXTURE")
	if dir == "" {
		b.Skip("PGGUARD_RESTORE_FIXTURE is not set")
	}
	channels := 2
	if c, err := strconv.Atoi(os.Getenv("PGGUARD_BENCH_CHANNELS")); err == nil && c > 0 {
		channels = c
	}
	ctx := context.Background()
	be, err := storage.NewLocal(filepath.Join(dir, "repo"))
	if err != nil {
		b.Fatal(err)
	}
	key, err := repo.KeyFile(filepath.Join(dir, "repo.key"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Open(ctx, be, key, repo.Runtime{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(ctx)
	for b.Loop() {
		target := filepath.Join(b.TempDir(), "data")
		res, err := Run(ctx, Options{Repo: r, BackupID: os.Getenv("PGGUARD_BENCH_BACKUP"), TargetDir: target, Target: Target{Immediate: true},
			Channels: channels, RestoreCommand: "false"})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(res.BytesTotal)
		b.ReportMetric(float64(res.BytesFetched), "fetched-bytes/op")
		os.RemoveAll(target)
	}
}
