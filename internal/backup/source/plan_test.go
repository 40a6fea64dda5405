package source

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old := t0.Add(-time.Hour)
	prev := &Previous{
		StartLSN:  0x3000000,
		StartTime: t0,
		Files: map[string]PrevFile{
			"base/5/16384":      {Size: 10 * PageSize, ModTime: old},
			"base/5/16385":      {Size: 4 * PageSize, ModTime: old},
			"base/5/16386":      {Size: 4 * PageSize, ModTime: old},
			"base/5/16387":      {Size: 4 * PageSize, ModTime: old},
			"base/5/16384.1":    {Size: 4 * PageSize, ModTime: old},
			"postgresql.conf":   {Size: 100, ModTime: old},
			"global/pg_control": {Size: PageSize, ModTime: t0.Add(-time.Second)},
			"pg_xact/0000":      {Size: PageSize, ModTime: old},
		},
	}
	prevWithForks := &Previous{StartLSN: prev.StartLSN, StartTime: t0, Files: map[string]PrevFile{
		"base/5/16386_vm":  {Size: PageSize, ModTime: old},
		"base/5/16386_fsm": {Size: 3 * PageSize, ModTime: old},
	}}
	wal := NewBlockMap(0x3000000, 0x5000000)
	wal.Add(1663, 5, 16385, "main", 2)
	wal.Add(1663, 5, 16385, "main", 7) // beyond both sizes: dropped from the list
	wal.Add(1663, 5, 16384, "main", relSegBlocks+1)
	wal.whole[forkKey{1663, 5, 16387, ""}] = true
	file := func(path string, size int64, mt time.Time) Entry {
		return Entry{Path: path, Mode: 0o600, Size: size, ModTime: mt}
	}
	tests := []struct {
		name    string
		e       Entry
		prev    *Previous
		wal     *BlockMap
		want    Action
		blocks  []uint32
		inCause string
	}{
		{"directory is metadata only", Entry{Path: "base", Mode: fs.ModeDir | 0o700}, prev, wal, ActionNone, nil, "not a regular"},
		{"symlink is metadata only", Entry{Path: "pg_tblspc/1", Mode: fs.ModeSymlink}, prev, wal, ActionNone, nil, "not a regular"},
		{"full backup reads everything", file("base/5/16384", 10*PageSize, old), nil, nil, ActionReadAll, nil, "full"},
		{"file absent from previous is read whole", file("base/5/99999", PageSize, old), prev, wal, ActionReadAll, nil, "new"},
		{"unchanged config file is taken from previous", file("postgresql.conf", 100, old), prev, wal, ActionFromPrevious, nil, "same size"},
		{"config file with new mtime is read whole", file("postgresql.conf", 100, t0.Add(time.Minute)), prev, wal, ActionReadAll, nil, "not a relation"},
		{"file written just before previous start is not trusted", file("global/pg_control", PageSize, t0.Add(-time.Second)), prev, wal, ActionReadAll, nil, "too recent"},
		{"non-relation file is read whole when previous start time is unknown", file("pg_xact/0000", PageSize, old), &Previous{StartLSN: 1, Files: prev.Files}, wal, ActionReadAll, nil, "not a relation"},
		{"relation untouched in WAL with same size is not read", file("base/5/16386", 4*PageSize, t0.Add(time.Minute)), prev, wal, ActionFromPrevious, nil, "no block changed"},
		{"relation with WAL-changed blocks reads only those", file("base/5/16385", 4*PageSize, t0.Add(time.Minute)), prev, wal, ActionReadBlocks, []uint32{2}, "blocks changed"},
		{"grown relation reads its new tail even without WAL blocks", file("base/5/16386", 6*PageSize, t0.Add(time.Minute)), prev, wal, ActionReadBlocks, nil, "blocks changed"},
		{"WAL block in second segment maps to block within that file", file("base/5/16384.1", 4*PageSize, old), prev, wal, ActionReadBlocks, []uint32{1}, "blocks changed"},
		{"WAL block of another segment does not touch the first", file("base/5/16384", 10*PageSize, old), prev, wal, ActionFromPrevious, nil, "no block changed"},
		{"relation truncated or created in WAL is scanned", file("base/5/16387", 4*PageSize, old), prev, wal, ActionScan, nil, "truncated"},
		{"without WAL map relations are scanned by page LSN", file("base/5/16386", 4*PageSize, old), prev, nil, ActionScan, nil, "no WAL block map"},
		{"visibility map is read whole though WAL does not name it", file("base/5/16386_vm", PageSize, old), prevWithForks, wal, ActionReadAll, nil, "visibility"},
		{"free space map is read whole though WAL does not name it", file("base/5/16386_fsm", 3*PageSize, old), prevWithForks, nil, ActionReadAll, nil, "free space"},
		{"relation of odd size is read whole", file("base/5/16386", 4*PageSize+10, old), prev, wal, ActionReadAll, nil, "not a relation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(tc.e, tc.prev, tc.wal)
			if p.Action != tc.want {
				t.Fatalf("Decide(%s) = %v (%s), want %v", tc.e.Path, p.Action, p.Reason, tc.want)
			}
			if !slices.Equal(p.Blocks, tc.blocks) {
				t.Errorf("blocks = %v, want %v", p.Blocks, tc.blocks)
			}
			if !strings.Contains(p.Reason, tc.inCause) {
				t.Errorf("reason %q does not mention %q", p.Reason, tc.inCause)
			}
			if p.Action == ActionScan && p.Since != tc.prev.StartLSN {
				t.Errorf("scan since %s, want previous start %s", p.Since, tc.prev.StartLSN)
			}
		})
	}
}
