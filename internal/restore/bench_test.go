package restore

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/testcluster"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

// BenchmarkRestore restores one full backup of a pgbench database (scale
// from PGGUARD_BENCH_SCALE, default 10) from a local repository into a new
// directory, without starting it, with 1 and 4 channels. Bytes per second
// are of the restored files. Delta re-restores the same directory (nothing
// differs: every block is compared, nothing written).
//
//	go test ./internal/restore -run '^$' -bench Restore -benchtime 3x
func BenchmarkRestore(b *testing.B) {
	scale := 10
	if s, err := strconv.Atoi(os.Getenv("PGGUARD_BENCH_SCALE")); err == nil && s > 0 {
		scale = s
	}
	r, m, archive := benchBackup(b, scale)
	for _, channels := range []int{1, 4} {
		b.Run("full/channels="+strconv.Itoa(channels), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				dir := filepath.Join(b.TempDir(), "data")
				res, err := Run(context.Background(), Options{Repo: r, BackupID: m.ID, TargetDir: dir, Target: Target{Immediate: true},
					Channels: channels, RestoreCommand: testcluster.CopyRestoreCommand(archive)})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(res.BytesTotal)
			}
		})
	}
	// Run as root for the database account, every path-based call goes
	// through the account's file threads (privdrop.FS): the same restore,
	// with its CPU time per operation beside the one as the caller.
	if os.Geteuid() == 0 {
		for _, as := range []string{"caller", "account"} {
			b.Run("full-as-"+as+"/channels=4", func(b *testing.B) {
				var acct osuser.Account
				if as == "account" {
					acct = testcluster.Account(b)
				}
				var cpu time.Duration
				for b.Loop() {
					dir := filepath.Join(scratch(b), "data")
					before := cpuTime()
					res, err := Run(context.Background(), Options{Repo: r, BackupID: m.ID, TargetDir: dir, Target: Target{Immediate: true},
						Channels: 4, RestoreCommand: testcluster.CopyRestoreCommand(archive), Account: acct})
					cpu += cpuTime() - before
					if err != nil {
						b.Fatal(err)
					}
					b.SetBytes(res.BytesTotal)
				}
				b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			})
		}
	}
	b.Run("delta-unchanged/channels=4", func(b *testing.B) {
		dir := filepath.Join(b.TempDir(), "data")
		opts := Options{Repo: r, BackupID: m.ID, TargetDir: dir, Target: Target{Immediate: true}, Channels: 4, RestoreCommand: testcluster.CopyRestoreCommand(archive)}
		if _, err := Run(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
		opts.Delta = true
		for b.Loop() {
			res, err := Run(context.Background(), opts)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(res.BytesTotal)
			b.ReportMetric(float64(res.BytesWritten), "written-bytes/op")
		}
	})
}

func benchBackup(b *testing.B, scale int) (*repo.Repository, *repo.Manifest, string) {
	b.Helper()
	r := testrepo.Local(b, packs4MiB)
	pg, archive := testcluster.StartArchivingPostgres(b)
	pg.Pgbench(b, "-i", "-s", strconv.Itoa(scale), "-q")
	res := testrepo.Backup(b, r, pg, repo.KindFull)
	return r, res, archive
}

// cpuTime is the user and system time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
