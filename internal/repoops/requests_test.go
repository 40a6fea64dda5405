package repoops_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repocopy"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/restore"
)

// Every request a person can get wrong is refused as bad input (exit 2),
// with the message naming the flag, before anything is written.
func TestRequestsRefusedAsBadInput(t *testing.T) {
	s := testSettings(t)
	ctx := context.Background()
	scratch := t.TempDir()
	restoreReq := func(edit func(*repoops.RestoreRequest)) repoops.RestoreRequest {
		r := repoops.RestoreRequest{TargetDir: filepath.Join(scratch, "restore"), ArchiveMode: "preserve", Target: restore.Target{Immediate: true, Action: "promote"}}
		edit(&r)
		return r
	}
	cases := []struct {
		name    string
		run     func() error
		mention string
	}{
		{"verify needs --backup or --all", func() error { _, err := repoops.Verify(ctx, s, repoops.VerifyRequest{}); return err }, "give either --backup ID or --all"},
		{"verify takes --backup or --all, not both", func() error {
			_, err := repoops.Verify(ctx, s, repoops.VerifyRequest{BackupID: "x", All: true})
			return err
		}, "give either --backup ID or --all"},
		{"prune with an unknown WAL rule", func() error { _, err := repoops.Prune(ctx, s, repoops.PruneRequest{Keep: 1, WAL: "some"}); return err }, "some"},
		{"prune keeping negative days", func() error {
			_, err := repoops.Prune(ctx, s, repoops.PruneRequest{Keep: 1, KeepDays: -1, WAL: "covered"})
			return err
		}, "--keep-days -1: must not be negative"},
		{"prune keeping no backup", func() error { _, err := repoops.Prune(ctx, s, repoops.PruneRequest{WAL: "covered"}); return err }, "keep"},
		{"a backup with a label of two lines", func() error {
			_, err := repoops.Backup(ctx, s, repoops.BackupRequest{Kind: "full", Label: "a\nb"})
			return err
		}, "--label:"},
		{"a backup without a database connection", func() error { _, err := repoops.Backup(ctx, s, repoops.BackupRequest{Kind: "full"}); return err }, "no PostgreSQL connection"},
		{"restore wal without a range", func() error {
			_, err := repoops.RestoreWAL(ctx, s, repoops.RestoreWALRequest{From: "2026-11-23 10:00:00+00"})
			return err
		}, "restore wal needs --from, --to and --target-dir"},
		{"restore wal of a time without a zone", func() error {
			_, err := repoops.RestoreWAL(ctx, s, repoops.RestoreWALRequest{From: "2026-11-23 10:00:00", To: "2026-11-23 11:00:00+00", TargetDir: scratch})
			return err
		}, "--from:"},
		{"restore wal of a range that ends before it starts", func() error {
			_, err := repoops.RestoreWAL(ctx, s, repoops.RestoreWALRequest{From: "2026-11-23 10:00:00+00", To: "2026-11-23 09:00:00+00", TargetDir: scratch})
			return err
		}, "--to 2026-11-23 09:00:00+00 is not after --from"},
		{"wal-fetch prefetching too far", func() error {
			_, err := repoops.WALFetch(ctx, s, repoops.WALFetchRequest{Name: "000000010000000000000001", Dest: "x", Prefetch: 256})
			return err
		}, "--prefetch 256: use 0 to 255"},
		{"wal-fetch of a path instead of a name", func() error {
			_, err := repoops.WALFetch(ctx, s, repoops.WALFetchRequest{Name: "../000000010000000000000001", Dest: "x"})
			return err
		}, "is not a WAL file name (restore_command passes %f)"},
		{"wal-push of a file that is not there", func() error { _, err := repoops.WALPush(ctx, s, filepath.Join(scratch, "nope")); return err }, "archive_command passes %p"},
		{"restore with an unknown archive mode", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) { r.ArchiveMode = "on" }))
			return err
		}, `--archive-mode "on": use preserve or off`},
		{"restore stopping after a start it does not do", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) { r.StopAfter = true }))
			return err
		}, "--stop-after needs --start"},
		{"restore with a write limit that is no rate", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) { r.WriteLimit = "fast" }))
			return err
		}, "--write-limit:"},
		{"restore of a tablespace without its directory", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) { r.Tablespaces = []string{"16384"} }))
			return err
		}, `--tablespace "16384": use OID=DIR`},
		{"restore starting a server without a port", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) { r.Start = true }))
			return err
		}, "--start needs --port"},
		{"restore without a directory to restore into", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) { r.TargetDir = "" }))
			return err
		}, "no target directory"},
		{"restore to a time without a zone", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) {
				r.Target = restore.Target{Time: "2026-11-23 10:00", Action: "promote"}
			}))
			return err
		}, "2026-11-23 10:00"},
		{"restore by a label no backup carries", func() error {
			_, err := repoops.Restore(ctx, s, restoreReq(func(r *repoops.RestoreRequest) { r.BackupRef = "label:nope" }))
			return err
		}, "--backup label:nope: no backup is labelled"},
		{"copy choosing no backups", func() error {
			_, err := repoops.Copy(ctx, s, repoops.CopyRequest{ToRepo: "file://" + scratch})
			return err
		}, "choose what to copy"},
		{"copy into its own source", func() error {
			_, err := repoops.Copy(ctx, s, repoops.CopyRequest{ToRepo: s.RepoURL, Select: repocopy.Options{All: true}})
			return err
		}, "is the source repository; give another destination"},
		{"a logical backup without a database", func() error { _, err := repoops.LogicalBackup(ctx, s, repoops.LogicalRequest{}); return err }, "--db is required"},
		{"a logical restore of a table name that is no SQL name", func() error {
			_, err := repoops.LogicalRestore(ctx, s, repoops.LogicalRequest{DB: "shop", Table: `a.b.c.d`})
			return err
		}, `--table "a.b.c.d"`},
		{"a logical backup with a label of two lines", func() error {
			_, err := repoops.LogicalBackup(ctx, s, repoops.LogicalRequest{DB: "shop", Label: "a\nb"})
			return err
		}, "--label:"},
		{"a logical backup without a database connection", func() error {
			_, err := repoops.LogicalBackup(ctx, s, repoops.LogicalRequest{DB: "shop"})
			return err
		}, "no PostgreSQL connection"},
		{"a drill with a check that is no SQL=EXPECTED", func() error {
			_, err := repoops.Drill(ctx, s, repoops.DrillRequest{Checks: []string{"select 1"}})
			return err
		}, "SQL=EXPECTED"},
		{"a drill with a write limit that is no rate", func() error { _, err := repoops.Drill(ctx, s, repoops.DrillRequest{WriteLimit: "fast"}); return err }, "--write-limit:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v; want bad input naming %q", err, tc.mention)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(scratch, "restore")); !os.IsNotExist(err) {
		t.Fatalf("a refused restore created its target directory: %v", err)
	}
}

func TestInit(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := filepath.Join(t.TempDir(), "repo")
	ov := reposettings.DefaultOverrides()
	ov.RepoURL = "file://" + dir
	s, err := reposettings.New(nil, ov)
	if err != nil {
		t.Fatal(err)
	}
	req := repoops.InitRequest{Cipher: "xchacha20-poly1305", Compression: "zstd", CompressionLevel: 3, PackSizeMiB: 32}
	s.Getenv = func(string) string { return "short" }
	if _, err := repoops.Init(context.Background(), s, req); err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), "shorter than 12 characters") {
		t.Fatalf("a short passphrase: %v", err)
	}
	bad := req
	bad.Compression = "gzip"
	if _, err := repoops.Init(context.Background(), s, bad); err == nil || !badinput.Is(err) {
		t.Fatalf("an unknown compression: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused init touched the location: %v", err)
	}
	s.Getenv = func(string) string { return pass }
	res, err := repoops.Init(context.Background(), s, req)
	if err != nil || res.Location != dir || res.Config.ID == "" || res.Config.Compression != "zstd" {
		t.Fatalf("Init = %+v, %v", res, err)
	}
	list, err := repoops.List(context.Background(), s)
	if err != nil || list == nil || len(list) != 0 {
		t.Fatalf("List of a new repository = %#v, %v; want an empty list (JSON [])", list, err)
	}
	if _, err := repoops.Init(context.Background(), s, req); err == nil {
		t.Fatal("a second init over a repository succeeded")
	}
}

func TestVerifyOfASoundBackupFindsNothing(t *testing.T) {
	s := testSettings(t)
	id := addLogical(t, s, "shop", time.Now().Add(-time.Hour), "")
	for _, req := range []repoops.VerifyRequest{{BackupID: id}, {All: true}} {
		res, err := repoops.Verify(context.Background(), s, req)
		if err != nil || len(res.Problems) != 0 || res.Problems == nil || res.Err() != nil {
			t.Fatalf("Verify(%+v) = %+v, %v", req, res, err)
		}
	}
	res, _ := repoops.Verify(context.Background(), s, repoops.VerifyRequest{All: true})
	if res.What != "every backup and pack" {
		t.Fatalf("what a --all verify checked: %q", res.What)
	}
}

func TestVerifyResultErr(t *testing.T) {
	v := repoops.VerifyResult{What: "backup b1", Problems: []repoops.VerifyProblem{
		{Backup: "b1", File: "base/1/2", Error: "block 3: checksum mismatch"},
		{Pack: "ab", Error: "pack ab: missing"},
	}}
	want := "verify backup b1: 2 problems, first: backup b1, file base/1/2: block 3: checksum mismatch"
	if err := v.Err(); err == nil || err.Error() != want || badinput.Is(err) {
		t.Fatalf("Err() = %v; want %q (a failure, not bad input)", err, want)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := repoops.HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
