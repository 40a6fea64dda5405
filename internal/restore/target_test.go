package restore

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
)

func TestTargetParse(t *testing.T) {
	cases := []struct {
		name    string
		target  Target
		wantErr string // substring; "" means valid
		kind    string
	}{
		{"time in PostgreSQL's form with a short offset is accepted", Target{Time: "2026-11-23 10:00:00+00"}, "", "time"},
		{"time in RFC 3339 is accepted", Target{Time: "2026-11-23T10:00:00.123456Z"}, "", "time"},
		{"time with a long offset and fractions is accepted", Target{Time: "2026-11-23 10:00:00.5+02:00"}, "", "time"},
		{"time without a zone is refused: it would mean the server's zone", Target{Time: "2026-11-23 10:00:00"}, "with a zone offset", ""},
		{"unparsable time is refused with an example", Target{Time: "yesterday"}, "2026-11-23 10:00:00+00", ""},
		{"LSN is accepted", Target{LSN: "0/3000060"}, "", "lsn"},
		{"LSN without a slash is refused", Target{LSN: "3000060"}, "form X/Y", ""},
		{"LSN with non-hex digits is refused", Target{LSN: "0/XYZ"}, "hexadecimal", ""},
		{"xid is accepted", Target{XID: "750"}, "", "xid"},
		{"non-numeric xid is refused", Target{XID: "abc"}, "decimal transaction id", ""},
		{"restore point name is accepted", Target{Name: "before-migration"}, "", "name"},
		{"restore point name longer than NAMEDATALEN is refused", Target{Name: strings.Repeat("x", 64)}, "at most 63 bytes", ""},
		{"immediate is accepted", Target{Immediate: true}, "", "immediate"},
		{"no target is refused and the flags are named", Target{}, "--immediate", ""},
		{"two targets are refused and both are named", Target{Time: "2026-11-23 10:00:00+00", LSN: "0/1"}, "time, lsn", ""},
		{"unknown action is refused", Target{Immediate: true, Action: "explode"}, "promote, pause or shutdown", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.target.parse()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("parse(%+v) = %v, want an error containing %q", c.target, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%+v): %v", c.target, err)
			}
			if p.kind != c.kind || p.Action != "promote" {
				t.Fatalf("parse(%+v) = kind %q action %q, want %q promote", c.target, p.kind, p.Action, c.kind)
			}
		})
	}
}

func TestParseTimeKeepsTheInstant(t *testing.T) {
	a, err := ParseTime("2026-11-23 10:00:00+00")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseTime("2026-11-23T12:00:00+02:00")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) {
		t.Fatalf("%s and %s should be the same instant", a, b)
	}
}

func TestChooseBackup(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 11, 23, h, 0, 0, 0, time.UTC) }
	hdrs := []repo.Header{
		{ID: "20261123T080000Z-00000001", Kind: repo.KindFull, StopTime: at(8), StopLSN: 0x1000},
		{ID: "20261123T090000Z-00000002", Kind: repo.KindIncr, StopTime: at(9), StopLSN: 0x2000},
		{ID: "20261123T093000Z-00000003", Kind: repo.KindLogical, StopTime: at(9).Add(30 * time.Minute), StopLSN: 0x2500},
		{ID: "20261123T100000Z-00000004", Kind: repo.KindIncr, StopTime: at(10), StopLSN: 0x3000},
	}
	cases := []struct {
		name    string
		id      string
		target  Target
		want    string
		wantErr string
	}{
		{"no id and no time: the newest physical backup", "", Target{Immediate: true}, "20261123T100000Z-00000004", ""},
		{"no id and a time: the newest backup ending before it", "", Target{Time: "2026-11-23 09:45:00+00"}, "20261123T090000Z-00000002", ""},
		{"a backup ending exactly at the target time can reach it", "", Target{Time: "2026-11-23 09:00:00+00"}, "20261123T090000Z-00000002", ""},
		{"no id and an LSN: the newest backup ending at or before it", "", Target{LSN: "0/2FFF"}, "20261123T090000Z-00000002", ""},
		{"a logical backup is never picked", "", Target{LSN: "0/2600"}, "20261123T090000Z-00000002", ""},
		{"a time before every backup ends is refused naming the oldest", "", Target{Time: "2026-11-23 07:00:00+00"}, "", "the oldest, 20261123T080000Z-00000001"},
		{"a named backup ending after the target is refused naming the one to use", "20261123T100000Z-00000004", Target{Time: "2026-11-23 09:45:00+00"}, "", "use --backup 20261123T090000Z-00000002"},
		{"a named backup ending before the target is used", "20261123T080000Z-00000001", Target{Time: "2026-11-23 09:45:00+00"}, "20261123T080000Z-00000001", ""},
		{"a named logical backup is refused", "20261123T093000Z-00000003", Target{Immediate: true}, "", "logical backup"},
		{"an unknown backup id is refused", "20261123T110000Z-00000009", Target{Immediate: true}, "", "not in the repository"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.target.parse()
			if err != nil {
				t.Fatal(err)
			}
			h, err := chooseBackup(hdrs, c.id, p)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("chooseBackup = %s, %v; want an error containing %q", h.ID, err, c.wantErr)
				}
				return
			}
			if err != nil || h.ID != c.want {
				t.Fatalf("chooseBackup = %s, %v; want %s", h.ID, err, c.want)
			}
		})
	}
	if _, err := chooseBackup(nil, "", parsedTarget{kind: "immediate"}); err == nil || !strings.Contains(err.Error(), "pgguard backup full") {
		t.Fatalf("empty repository: got %v, want a hint to take a backup", err)
	}
}

func TestRecoveryConf(t *testing.T) {
	existing := "# Do not edit this file manually!\nshared_buffers = '64MB'\nrecovery_target_time = '2020-01-01 00:00:00+00'\nrestore_command = 'old'\n"
	cases := []struct {
		name       string
		target     Target
		want       []string
		mustNot    []string
		existing   string
		archiveOff bool
	}{
		{"time target: time, inclusive, action and latest timeline are written; stale targets dropped, other settings kept",
			Target{Time: "2026-11-23T12:00:00+02:00", Inclusive: true, Action: "pause"},
			[]string{"shared_buffers = '64MB'", "recovery_target_time = '2026-11-23 10:00:00+00'", "recovery_target_inclusive = true", "recovery_target_action = 'pause'", "recovery_target_timeline = 'latest'", "restore_command = 'pgguard wal-fetch %f %p'"},
			[]string{"2020-01-01", "'old'"}, existing, false},
		{"immediate target stays on the backup's timeline and writes no inclusive setting",
			Target{Immediate: true},
			[]string{"recovery_target = 'immediate'", "recovery_target_timeline = 'current'", "recovery_target_action = 'promote'"},
			[]string{"recovery_target_inclusive"}, "", false},
		{"name with a quote is escaped", Target{Name: "it's"}, []string{"recovery_target_name = 'it''s'"}, nil, "", false},
		{"exclusive LSN target", Target{LSN: "0/3000060"}, []string{"recovery_target_lsn = '0/3000060'", "recovery_target_inclusive = false"}, nil, "", false},
		{"running it twice leaves one block of settings",
			Target{XID: "42"}, []string{"recovery_target_xid = '42'"}, nil,
			recoveryConf(existing, mustParse(Target{XID: "41"}), "x", "b1", true), false},
		{"archive off replaces an archive_mode line",
			Target{Immediate: true}, []string{"archive_mode = 'off'"}, []string{"archive_mode = on"},
			"archive_mode = on\n", true},
		{"latest: no target, the newest timeline, archiving off for a copy",
			Target{Latest: true}, []string{"recovery_target_timeline = 'latest'", "archive_mode = 'off'"},
			[]string{"recovery_target =", "recovery_target_time =", "recovery_target_inclusive", "recovery_target_action", "2020-01-01"}, existing, true},
		{"archive preserved leaves archive_mode alone",
			Target{Immediate: true}, []string{"archive_mode = on"}, []string{"archive_mode = 'off'"},
			"archive_mode = on\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := recoveryConf(c.existing, mustParse(c.target), "pgguard wal-fetch %f %p", "20261123T100000Z-00000004", c.archiveOff)
			for _, w := range c.want {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range c.mustNot {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
			if n := strings.Count(got, recoveryMarker); n != 1 {
				t.Errorf("%d recovery blocks, want 1:\n%s", n, got)
			}
			if n := strings.Count(got, "restore_command"); n != 1 {
				t.Errorf("%d restore_command lines, want 1:\n%s", n, got)
			}
		})
	}
}

func mustParse(t Target) parsedTarget {
	p, err := t.parse()
	if err != nil {
		panic(err)
	}
	return p
}

func TestEntryKind(t *testing.T) {
	cases := []struct {
		name string
		mode uint32
		want kind
	}{
		{"Go directory bit is a directory", uint32(fs.ModeDir | 0o700), kindDir},
		{"Go symlink bit is a symlink", uint32(fs.ModeSymlink | 0o777), kindSymlink},
		{"Unix S_IFDIR is a directory", 0o040700, kindDir},
		{"Unix S_IFLNK is a symlink", 0o120777, kindSymlink},
		{"plain permissions are a regular file", 0o600, kindRegular},
		{"Unix S_IFREG is a regular file", 0o100600, kindRegular},
	}
	for _, c := range cases {
		if got := entryKind(c.mode); got != c.want {
			t.Errorf("%s: entryKind(%o) = %d, want %d", c.name, c.mode, got, c.want)
		}
	}
}

func TestCheckTargetDir(t *testing.T) {
	dataDir := func(t *testing.T, sysid uint64) string {
		d := t.TempDir()
		os.MkdirAll(filepath.Join(d, "global"), 0o700)
		b := make([]byte, 16)
		for i := range 8 {
			b[i] = byte(sysid >> (8 * i))
		}
		if err := os.WriteFile(filepath.Join(d, "global", "pg_control"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	other := func(t *testing.T, _ uint64) string {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "notes.txt"), []byte("mine"), 0o600)
		return d
	}
	interrupted := func(t *testing.T, sysid uint64) string {
		d := t.TempDir()
		r, err := os.OpenRoot(d)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := writeMarker(r, marker{BackupID: "b", SystemID: sysid}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	missing := func(t *testing.T, _ uint64) string { return filepath.Join(t.TempDir(), "new") }
	running := func(t *testing.T, sysid uint64) string {
		d := dataDir(t, sysid)
		pid := strconv.Itoa(os.Getpid()) // a live process, as a running postmaster would be
		if err := os.WriteFile(filepath.Join(d, "postmaster.pid"), []byte(pid+"\n"+d+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name    string
		make    func(*testing.T, uint64) string
		sysid   uint64 // of the directory; the backup's is 7
		delta   bool
		wantErr string
	}{
		{"a directory that does not exist yet is fine", missing, 7, false, ""},
		{"a non-empty directory is refused without delta", dataDir, 7, false, "not empty"},
		{"delta over the same system is allowed", dataDir, 7, true, ""},
		{"delta over another system is refused naming both", dataDir, 8, true, "system 8 (per global/pg_control), the backup to system 7"},
		{"delta over something that is not a data directory is refused", other, 7, true, "no global/pg_control"},
		{"delta resumes an interrupted restore of the same system", interrupted, 7, true, ""},
		{"delta over a directory a server is running on is refused", running, 7, true, "is running on the target directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.make(t, c.sysid)
			st, err := inspectDir(d)
			if err != nil {
				t.Fatal(err)
			}
			err = checkTargetDir(d, st, c.delta, 7)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("checkTargetDir = %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestTablespaceRemap(t *testing.T) {
	m := &repo.Manifest{Header: repo.Header{ID: "20261123T100000Z-00000001"}, Files: []repo.FileEntry{
		{Path: "backup_label", Mode: 0o600}, {Path: "global/pg_control", Mode: 0o600},
		{Path: "pg_tblspc/16384", Mode: uint32(fs.ModeSymlink | 0o777)},
	}}
	cases := []struct {
		name    string
		to      map[string]string
		wantErr string
		wantMap string
	}{
		{"no remap keeps the original map byte for byte", nil, "", "16384 /srv/ts\n16385 /srv/other\n"},
		{"a remap rewrites the map PostgreSQL recreates links from", map[string]string{"16384": "/new/ts/"}, "", "16384 /new/ts\n16385 /srv/other\n"},
		{"an oid the backup does not have is refused, listing the ones it has", map[string]string{"99": "/x"}, "16384, 16385", ""},
		{"a relative location is refused", map[string]string{"16384": "rel/ts"}, "absolute path", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			orig := "16384 /srv/ts\n16385 /srv/other\n"
			l, err := planLayout(m, orig)
			if err != nil {
				t.Fatal(err)
			}
			err = l.remap(c.to)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("remap = %v, want an error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(l.tablespaceMap([]byte(orig))); got != c.wantMap {
				t.Fatalf("tablespace_map = %q, want %q", got, c.wantMap)
			}
		})
	}
}
