package source

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestExcluded(t *testing.T) {
	tests := []struct {
		name  string
		rel   string
		isDir bool
		want  bool
	}{
		{"postmaster.pid is never copied", "postmaster.pid", false, true},
		{"postmaster.opts is never copied", "postmaster.opts", false, true},
		{"backup_label on disk belongs to another backup", "backup_label", false, true},
		{"tablespace_map on disk belongs to another backup", "tablespace_map", false, true},
		{"recovery.signal is not copied", "recovery.signal", false, true},
		{"standby.signal is not copied", "standby.signal", false, true},
		{"pg_wal directory itself is kept", "pg_wal", true, false},
		{"pg_wal segments come from the archive", "pg_wal/000000010000000000000001", false, true},
		{"pg_wal/archive_status is kept empty", "pg_wal/archive_status", true, false},
		{"archive_status contents are dropped", "pg_wal/archive_status/000000010000000000000001.done", false, true},
		{"pg_replslot contents are dropped", "pg_replslot/slot1", true, true},
		{"pg_replslot directory is kept", "pg_replslot", true, false},
		{"pg_stat_tmp contents are dropped", "pg_stat_tmp/global.stat", false, true},
		{"pg_subtrans contents are dropped", "pg_subtrans/0000", false, true},
		{"pg_dynshmem contents are dropped", "pg_dynshmem/mmap.1", false, true},
		{"pg_notify contents are dropped", "pg_notify/0000", false, true},
		{"pg_serial contents are dropped", "pg_serial/0000", false, true},
		{"pg_snapshots contents are dropped", "pg_snapshots/00000003-1", false, true},
		{"temp files are dropped anywhere", "base/5/pgsql_tmp/pgsql_tmp123.0", false, true},
		{"temp directories are dropped", "base/pgsql_tmp", true, true},
		{"relcache init file is rebuilt at start", "base/5/pg_internal.init", false, true},
		{"pg_xact is copied", "pg_xact/0000", false, false},
		{"pg_control is copied", "global/pg_control", false, false},
		{"relation files are copied", "base/5/16384", false, false},
		{"config files are copied", "postgresql.conf", false, false},
		{"a nested backup_label is an ordinary file", "base/backup_label", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Excluded(tc.rel, tc.isDir); got != tc.want {
				t.Errorf("Excluded(%q, dir=%v) = %v, want %v", tc.rel, tc.isDir, got, tc.want)
			}
		})
	}
}

func TestParseRelFile(t *testing.T) {
	tests := []struct {
		name string
		rel  string
		want RelFile
		ok   bool
	}{
		{"main fork in a database", "base/5/16384", RelFile{1663, 5, 16384, "main", 0}, true},
		{"second segment", "base/5/16384.1", RelFile{1663, 5, 16384, "main", 1}, true},
		{"free space map fork", "base/5/16384_fsm", RelFile{1663, 5, 16384, "fsm", 0}, true},
		{"visibility map segment", "base/5/16384_vm.2", RelFile{1663, 5, 16384, "vm", 2}, true},
		{"init fork of an unlogged table", "base/5/16384_init", RelFile{1663, 5, 16384, "init", 0}, true},
		{"shared catalog", "global/1262", RelFile{1664, 0, 1262, "main", 0}, true},
		{"tablespace file", "pg_tblspc/16390/PG_15_202209061/5/16391", RelFile{16390, 5, 16391, "main", 0}, true},
		{"pg_control is not a relation", "global/pg_control", RelFile{}, false},
		{"filenode map is not a relation", "base/5/pg_filenode.map", RelFile{}, false},
		{"PG_VERSION is not a relation", "base/5/PG_VERSION", RelFile{}, false},
		{"pg_xact is not a relation", "pg_xact/0000", RelFile{}, false},
		{"unknown fork suffix is not a relation", "base/5/16384_foo", RelFile{}, false},
		{"overflowing oid is not a relation", "base/5/99999999999", RelFile{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseRelFile(tc.rel)
			if ok != tc.ok || got != tc.want {
				t.Errorf("ParseRelFile(%q) = %+v, %v; want %+v, %v", tc.rel, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWalkAppliesExclusionsAndDropsUnloggedForks(t *testing.T) {
	dir := t.TempDir()
	ts := t.TempDir()
	files := []string{
		"PG_VERSION", "postmaster.pid", "backup_label", "recovery.signal", "postgresql.conf",
		"global/pg_control", "global/1262",
		"base/5/16384", "base/5/16384_fsm", "base/5/16385", "base/5/16385_init", "base/5/16385_fsm",
		"base/5/pg_internal.init", "base/pgsql_tmp/pgsql_tmp1.0",
		"pg_wal/000000010000000000000001", "pg_wal/archive_status/000000010000000000000001.done",
		"pg_stat_tmp/x", "pg_xact/0000",
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(ts, "PG_15_1", "5"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "PG_15_1", "5", "20000"), make([]byte, PageSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pg_tblspc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(dir, "pg_tblspc", "16390")); err != nil {
		t.Fatal(err)
	}
	entries, err := Walk(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var link Entry
	for _, e := range entries {
		got = append(got, e.Path)
		if e.Path == "pg_tblspc/16390" {
			link = e
		}
	}
	want := []string{
		"PG_VERSION", "base", "base/5", "base/5/16384", "base/5/16384_fsm", "base/5/16385_init",
		"global", "global/1262", "global/pg_control",
		"pg_stat_tmp", "pg_tblspc", "pg_tblspc/16390",
		"pg_tblspc/16390/PG_15_1", "pg_tblspc/16390/PG_15_1/5", "pg_tblspc/16390/PG_15_1/5/20000",
		"pg_wal", "pg_wal/archive_status", "pg_xact", "pg_xact/0000", "postgresql.conf",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Walk paths:\n got %q\nwant %q", got, want)
	}
	if link.LinkTarget != ts || link.Mode.Type() != os.ModeSymlink {
		t.Errorf("tablespace link entry = %+v, want symlink to %s", link, ts)
	}
}

func TestWalkRefusesADirectoryThatIsNotPGDATA(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		if _, err := Walk(context.Background(), dir); err == nil {
			t.Errorf("Walk(%s) succeeded, want an error naming the directory", dir)
		}
	}
}
