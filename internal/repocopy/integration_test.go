package repocopy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/restore"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

// scratch is a directory the PostgreSQL account can use, removed at cleanup.
func scratch(t testing.TB) string { return testcluster.Scratch(t, "pgguard-copy-") }

// history is a primary with two physical backups in a local repository
// and every archived WAL file pushed there too.
type history struct {
	pg          *testcluster.Postgres
	src         *repo.Repository
	full, incr  *repo.Manifest
	marks       string // rows of marks, written after the incremental
	accounts    string
	historyRows string
	lsn         string // after marks was written
}

func buildHistory(t *testing.T, scale int) *history {
	t.Helper()
	pg, archive := testcluster.StartArchivingPostgres(t)
	h := &history{pg: pg}
	be, err := storage.NewLocal(filepath.Join(scratch(t), "src"))
	if err != nil {
		t.Fatal(err)
	}
	h.src = initRepo(t, be, "source passphrase", func(o *repo.Options) { o.BlockSize = 128 << 10; o.PackSize = 4 << 20 })
	pg.Pgbench(t, "-i", "-s", strconv.Itoa(scale), "-q")
	h.full = testrepo.Backup(t, h.src, pg, repo.KindFull)
	pg.Pgbench(t, "-c", "2", "-t", "300", "-n")
	h.incr = testrepo.Backup(t, h.src, pg, repo.KindIncr)
	pg.Exec(t, "CREATE TABLE marks AS SELECT g FROM generate_series(1, 1234) g")
	h.marks = "1234"
	h.accounts = pg.QueryString(t, "SELECT count(*) FROM pgbench_accounts")
	h.historyRows = pg.QueryString(t, "SELECT count(*) FROM pgbench_history")
	h.lsn = pg.QueryString(t, "pg_current_wal_lsn()")
	pg.SwitchWALAndWaitArchived(t)
	// What wal-push does for each file the archiver hands over.
	entries, err := os.ReadDir(archive)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(archive, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.src.PutWAL(context.Background(), e.Name(), data); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// restoreAndCheck restores the newest backup of r with the WAL archived in
// r (fetched from r into a directory for a cp restore_command), starts
// PostgreSQL on it and checks that the rows written after the backup are
// there.
func (h *history) restoreAndCheck(t *testing.T, r *repo.Repository) {
	t.Helper()
	ctx := context.Background()
	dir := scratch(t)
	walDir := filepath.Join(dir, "wal")
	if err := os.Mkdir(walDir, 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := r.ListWAL(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, err := r.GetWAL(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(walDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := restore.Options{
		Repo: r, TargetDir: filepath.Join(dir, "data"), Channels: 4,
		RestoreCommand: "cp " + walDir + "/%f %p", ArchiveOff: true,
		Target:  restore.Target{LSN: h.lsn, Inclusive: true},
		Account: testcluster.Account(t), Start: true, BinDir: testcluster.PGBinDir, Port: testcluster.FreePort(t),
		OpenTimeout: 3 * time.Minute,
	}
	res, err := restore.Run(ctx, opts)
	if err != nil {
		t.Fatalf("restore from the copy: %v", err)
	}
	if res.Server != nil {
		defer func() {
			if err := res.Server.Stop(time.Minute); err != nil {
				t.Errorf("stop restored server: %v", err)
			}
		}()
	}
	if res.BackupID != h.incr.ID {
		t.Errorf("restored backup %s, want the newest, %s", res.BackupID, h.incr.ID)
	}
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(qctx, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", opts.Port))
	if err != nil {
		t.Fatalf("connect to the server restored from the copy: %v", err)
	}
	defer conn.Close(context.Background())
	var got string
	if err := conn.QueryRow(qctx, "SELECT (SELECT count(*) FROM marks) || '/' || (SELECT count(*) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_history)").Scan(&got); err != nil {
		t.Fatalf("query the restored server: %v", err)
	}
	if want := h.marks + "/" + h.accounts + "/" + h.historyRows; got != want {
		t.Fatalf("restored from the copy: marks/accounts/history rows = %s, want %s", got, want)
	}
	t.Logf("restored %s from %s and started it: rows %s as on the primary", res.BackupID, r.Backend().Location(), got)
}

func verifyClean(t *testing.T, r *repo.Repository) {
	t.Helper()
	var problems []string
	if err := r.Verify(context.Background(), "", func(p repo.Problem) { problems = append(problems, p.String()) }); err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("verify %s: %s", r.Backend().Location(), strings.Join(problems, "\n"))
	}
}

func TestCopyRealBackupsToLocalAndS3(t *testing.T) {
	ctx := context.Background()
	h := buildHistory(t, 2)

	t.Run("local to local with another key: verify passes, the copy restores and starts, a second copy stores nothing", func(t *testing.T) {
		be, err := storage.NewLocal(filepath.Join(scratch(t), "dst"))
		if err != nil {
			t.Fatal(err)
		}
		dst := initRepo(t, be, "another passphrase", func(o *repo.Options) { o.Compression = repo.CompressLZ4 })
		res, err := Copy(ctx, h.src, dst, Options{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Copied) != 2 || res.WALCopied == 0 {
			t.Fatalf("copy: %+v", res)
		}
		t.Logf("copy: %d blocks stored (%d B), %d skipped (%d unread), %d B read in %s, %d WAL files",
			res.BlocksCopied, res.BytesStored, res.BlocksSkipped, res.BlocksKnown, res.BytesRead, res.Duration.Round(time.Millisecond), res.WALCopied)
		verifyClean(t, dst)
		h.restoreAndCheck(t, dst)

		res, err = Copy(ctx, h.src, dst, Options{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.NothingNew() || res.BytesStored != 0 || res.BytesRead != 0 {
			t.Fatalf("second copy: want nothing stored or read: %+v", res)
		}
	})

	t.Run("local to S3", func(t *testing.T) {
		s3 := testcluster.StartS3(t)
		be, err := storage.Open(ctx, s3.URL("offsite"), s3.Options())
		if err != nil {
			t.Fatal(err)
		}
		dst := initRepo(t, be, "s3 passphrase", nil)
		res, err := Copy(ctx, h.src, dst, Options{All: true, WAL: WALAll})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("copy to S3: %d blocks stored (%d B), %d B read in %s, %d WAL files",
			res.BlocksCopied, res.BytesStored, res.BytesRead, res.Duration.Round(time.Millisecond), res.WALCopied)
		verifyClean(t, dst)
		h.restoreAndCheck(t, dst)
		res, err = Copy(ctx, h.src, dst, Options{All: true, WAL: WALAll})
		if err != nil {
			t.Fatal(err)
		}
		if !res.NothingNew() || res.BytesStored != 0 {
			t.Fatalf("second copy to S3: %+v", res)
		}
	})
}

// TestCopyThroughput measures a copy of a scale-10 pgbench backup; it runs
// only with PGGUARD_COPY_BENCH=1.
func TestCopyThroughput(t *testing.T) {
	if os.Getenv("PGGUARD_COPY_BENCH") == "" {
		t.Skip("set PGGUARD_COPY_BENCH=1 to measure copy throughput on a scale-10 database")
	}
	ctx := context.Background()
	h := buildHistory(t, 10)
	be, err := storage.NewLocal(filepath.Join(scratch(t), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	dst := initRepo(t, be, "another passphrase", nil)
	for _, id := range []string{h.full.ID, h.incr.ID} {
		res, err := Copy(ctx, h.src, dst, Options{BackupIDs: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("copy of %s: %d blocks stored, %d skipped (%d unread); read %.1f MiB (%.1f MiB of it %d WAL files), stored %.1f MiB, in %s = %.0f MiB/s read",
			id, res.BlocksCopied, res.BlocksSkipped, res.BlocksKnown, float64(res.BytesRead)/(1<<20), float64(res.WALBytesRead)/(1<<20),
			res.WALCopied, float64(res.BytesStored)/(1<<20), res.Duration.Round(time.Millisecond), float64(res.BytesRead)/(1<<20)/res.Duration.Seconds())
	}
	res, err := Copy(ctx, h.src, dst, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second copy of all: stored %d B, read %d B, in %s", res.BytesStored, res.BytesRead, res.Duration.Round(time.Millisecond))

	s3 := testcluster.StartS3(t)
	s3be, err := storage.Open(ctx, s3.URL("bench"), s3.Options())
	if err != nil {
		t.Fatal(err)
	}
	s3dst := initRepo(t, s3be, "s3 passphrase", nil)
	res, err = Copy(ctx, h.src, s3dst, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copy of all to S3 (versitygw on loopback): %d blocks stored, %d skipped; read %.1f MiB (%.1f MiB WAL), stored %.1f MiB, in %s = %.0f MiB/s read",
		res.BlocksCopied, res.BlocksSkipped, float64(res.BytesRead)/(1<<20), float64(res.WALBytesRead)/(1<<20),
		float64(res.BytesStored)/(1<<20), res.Duration.Round(time.Millisecond), float64(res.BytesRead)/(1<<20)/res.Duration.Seconds())
	res, err = Copy(ctx, h.src, s3dst, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second copy of all to S3: stored %d B, read %d B, in %s", res.BytesStored, res.BytesRead, res.Duration.Round(time.Millisecond))
}
