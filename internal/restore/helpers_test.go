package restore

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// scratch is a directory the PostgreSQL account can use, removed at cleanup.
func scratch(t testing.TB) string { return testcluster.Scratch(t, "pgguard-restore-") }

// packs4MiB is the pack size of the tests' repositories: large enough that
// a backup of a small database fills few packs.
func packs4MiB(o *repo.Options) { o.PackSize = 4 << 20 }

// restoreOpts are the options every integration restore shares: a new
// directory, the cp archive, archiving off, started and left running.
func restoreOpts(t *testing.T, r *repo.Repository, archive string) Options {
	return Options{
		Repo: r, TargetDir: filepath.Join(scratch(t), "data"), Channels: 4,
		RestoreCommand: testcluster.CopyRestoreCommand(archive), ArchiveOff: true,
		Account: testcluster.Account(t), Start: true, BinDir: testcluster.PGBinDir, Port: testcluster.FreePort(t),
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

// refuseUnchanged runs a restore that must be refused with an error
// containing want, and leave the target directory as it was; it returns
// the error. what names the attempt in a failure.
func refuseUnchanged(t *testing.T, what string, opts Options, want string) error {
	t.Helper()
	before := listing(t, opts.TargetDir)
	_, err := Run(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: %v, want a refusal containing %q", what, err, want)
	}
	if after := listing(t, opts.TargetDir); after != before {
		t.Fatalf("%s: the refused restore changed %s:\nbefore:\n%s\nafter:\n%s", what, opts.TargetDir, before, after)
	}
	return err
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
	return testcluster.Listing(t, dir, func(fi fs.FileInfo) string {
		return fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	})
}
