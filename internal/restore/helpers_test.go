package restore

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// scratch is a directory the PostgreSQL account can use, removed at cleanup.
func scratch(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgguard-restore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := account(t).ChownTree(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func account(t testing.TB) osuser.Account {
	t.Helper()
	acct, err := osuser.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// startArchivingPrimary starts a server that archives WAL with cp into a
// new directory, which it returns.
func startArchivingPrimary(t testing.TB) (*testcluster.Postgres, string) {
	t.Helper()
	archive := filepath.Join(scratch(t), "archive")
	if err := os.Mkdir(archive, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := account(t).ChownTree(archive); err != nil {
		t.Fatal(err)
	}
	pg := testcluster.StartPostgres(t, testcluster.PGOptions{Conf: []string{
		"archive_mode = on",
		fmt.Sprintf("archive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'", archive, archive),
		"max_wal_size = '1GB'", "checkpoint_timeout = '30min'",
	}})
	return pg, archive
}

// restoreCommand fetches WAL from a cp archive.
func restoreCommand(archive string) string {
	return fmt.Sprintf("cp %s/%%f %%p", archive)
}

// fastKDF keeps tests quick; the format is the same as with real parameters.
var fastKDF = repo.KDFParams{KDF: repo.Argon2id, Time: 1, Memory: 64, Threads: 1}

const testPassphrase = "correct horse battery staple"

// newRepo initialises a repository on be.
func newRepo(t testing.TB, be storage.Backend) *repo.Repository {
	t.Helper()
	opts := repo.DefaultOptions()
	opts.KDF = fastKDF
	opts.PackSize = 4 << 20
	r, err := repo.Init(context.Background(), be, repo.Passphrase(testPassphrase), opts)
	if err != nil {
		t.Fatalf("init repository: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func localRepo(t testing.TB) *repo.Repository {
	t.Helper()
	be, err := storage.NewLocal(filepath.Join(scratch(t), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return newRepo(t, be)
}

// takeBackup runs the backup driver (internal/backup) against pg.
func takeBackup(t testing.TB, r *repo.Repository, pg *testcluster.Postgres, kind repo.Kind) *repo.Manifest {
	t.Helper()
	res, err := backup.Run(context.Background(), backup.Options{Repo: r, ConnString: pg.ConnString(), Kind: kind, Channels: 4})
	if err != nil {
		t.Fatalf("%s backup: %v", kind, err)
	}
	return res.Manifest
}

// switchAndWaitArchived closes the current WAL segment and waits until the
// archiver has copied it.
func switchAndWaitArchived(t *testing.T, pg *testcluster.Postgres) {
	t.Helper()
	seg := pg.QueryString(t, "pg_walfile_name(pg_switch_wal())")
	waitFor(t, time.Minute, "segment "+seg+" archived", func() (bool, string) {
		last := pg.QueryString(t, "coalesce((SELECT last_archived_wal FROM pg_stat_archiver), 'none')")
		failed := pg.QueryString(t, "SELECT failed_count || ' failures, last ' || coalesce(last_failed_wal, 'none') FROM pg_stat_archiver")
		return last != "none" && last >= seg, "last_archived_wal=" + last + ", " + failed + "; log tail: " + pg.LogTail(600)
	})
}

// waitFor polls cond until it returns true or timeout passes, then fails
// with what cond last reported.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	t.Fatalf("%s: not reached within %s; last seen: %s", what, timeout, last)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// restoreOpts are the options every integration restore shares: a new
// directory, the cp archive, archiving off, started and left running.
func restoreOpts(t *testing.T, r *repo.Repository, archive string) Options {
	return Options{
		Repo: r, TargetDir: filepath.Join(scratch(t), "data"), Channels: 4,
		RestoreCommand: restoreCommand(archive), ArchiveOff: true,
		Account: account(t), Start: true, BinDir: testcluster.PGBinDir, Port: freePort(t),
		OpenTimeout: 3 * time.Minute,
	}
}

// runRestore runs a restore that must succeed; a started server is stopped
// at cleanup.
func runRestore(t *testing.T, opts Options) Result {
	t.Helper()
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("restore into %s: %v", opts.TargetDir, err)
	}
	if res.Server != nil {
		srv := res.Server
		t.Cleanup(func() {
			if err := srv.Stop(time.Minute); err != nil {
				t.Errorf("stop restored server: %v", err)
			}
		})
	}
	return res
}

// query runs one query returning one value, as text, on a restored server.
func query(t *testing.T, port int, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := connect(t, ctx, port)
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(ctx, "SELECT ("+sql+")::text").Scan(&s); err != nil {
		t.Fatalf("query %q on restored server: %v", sql, err)
	}
	return s
}

func connect(t *testing.T, ctx context.Context, port int) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port))
	if err != nil {
		t.Fatalf("connect to restored server on %d: %v", port, err)
	}
	return conn
}

// listing describes a directory tree (paths, sizes, modes) so that a test
// can prove it unchanged.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				lines = append(lines, "(absent)")
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, fmt.Sprintf("%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
