package source

import (
	"slices"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Lines in the shape pg_waldump 15 prints (and the comma form of later
// releases).
const walDumpSample = `rmgr: Heap        len (rec/tot):     59/    59, tx:        735, lsn: 0/0301E7F0, prev 0/0301E7B8, desc: INSERT off 27 flags 0x00, blkref #0: rel 1663/5/16396 blk 0
rmgr: Heap        len (rec/tot):     54/  7950, tx:        736, lsn: 0/03020000, prev 0/0301E7F0, desc: HOT_UPDATE off 3 xmax 736 flags 0x10 ; new off 9 xmax 0, blkref #0: rel 1663/5/16397 blk 131074 FPW
rmgr: Heap2       len (rec/tot):     64/    64, tx:          0, lsn: 0/03021000, prev 0/03020000, desc: VISIBLE cutoff xid 735 flags 0x01, blkref #0: rel 1663/5/16396 fork vm blk 0, blkref #1: rel 1663/5/16396 blk 5
rmgr: Btree       len (rec/tot):     72/    72, tx:        737, lsn: 0/03022000, prev 0/03021000, desc: INSERT_LEAF off 2, blkref #0: rel 1664/0/1262, blk 1
rmgr: Heap        len (rec/tot):     72/    72, tx:        737, lsn: 0/03022100, prev 0/03022000, desc: INSERT off 1, blkref #0: rel 1663/5/16500, fork fsm, blk 3
rmgr: Storage     len (rec/tot):     42/    42, tx:          0, lsn: 0/03023000, prev 0/03022100, desc: CREATE base/5/16410
rmgr: Storage     len (rec/tot):     46/    46, tx:          0, lsn: 0/03023100, prev 0/03023000, desc: TRUNCATE base/5/16411 to 3 blocks flags 7
rmgr: Database    len (rec/tot):     42/    42, tx:        740, lsn: 0/03024000, prev 0/03023100, desc: CREATE copy dir 1663/1 to 1663/16420
rmgr: Database    len (rec/tot):     34/    34, tx:        741, lsn: 0/03025000, prev 0/03024000, desc: CREATE_WAL_LOG create dir 1663/16421
rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/03026000, prev 0/03025000, desc: CHECKPOINT_ONLINE redo 0/3025F00; tli 1
`

func TestParseWALDump(t *testing.T) {
	m := NewBlockMap(0, 1)
	if err := ParseWALDump(strings.NewReader(walDumpSample), m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		rel    string
		blocks []uint32
		whole  bool
	}{
		{"blkref without fork is the main fork", "base/5/16396", []uint32{0, 5}, false},
		{"fork vm is kept apart from main", "base/5/16396_vm", []uint32{0}, false},
		{"block in second segment maps to that segment", "base/5/16397.1", []uint32{2}, false},
		{"block of another segment is not in the first", "base/5/16397", nil, false},
		{"shared catalog in comma form", "global/1262", []uint32{1}, false},
		{"fork in comma form", "base/5/16500_fsm", []uint32{3}, false},
		{"storage create marks every fork whole", "base/5/16410_vm", nil, true},
		{"storage truncate marks the relation whole", "base/5/16411", nil, true},
		{"database created by copy is whole", "base/16420/1259", nil, true},
		{"database created by wal log is whole", "base/16421/1259", nil, true},
		{"untouched relation has no blocks", "base/5/99999", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := ParseRelFile(tc.rel)
			if !ok {
				t.Fatalf("bad test path %s", tc.rel)
			}
			blocks, whole := m.Changed(r)
			if whole != tc.whole || !slices.Equal(blocks, tc.blocks) {
				t.Errorf("Changed(%s) = %v, whole=%v; want %v, whole=%v", tc.rel, blocks, whole, tc.blocks, tc.whole)
			}
		})
	}
	if m.Len() != 6 {
		t.Errorf("Len = %d, want 6 distinct blocks", m.Len())
	}
}

func TestParseBackupLabel(t *testing.T) {
	label := "START WAL LOCATION: 0/5000028 (file 000000020000000000000005)\nCHECKPOINT LOCATION: 0/5000060\nBACKUP METHOD: streamed\nBACKUP FROM: standby\nSTART TIME: 2026-01-01 00:00:00 UTC\nLABEL: nightly\nSTART TIMELINE: 2\n"
	li, err := ParseBackupLabel(label)
	if err != nil {
		t.Fatal(err)
	}
	want := LabelInfo{StartLSN: 0x5000028, StartWAL: "000000020000000000000005", Checkpoint: 0x5000060, Timeline: 2, FromRole: "standby", Label: "nightly"}
	if li != want {
		t.Errorf("ParseBackupLabel = %+v, want %+v", li, want)
	}
	if _, err := ParseBackupLabel("LABEL: x\n"); err == nil {
		t.Error("label without start location parsed without error")
	}
}

func TestReachedEnd(t *testing.T) {
	const end = lsn.LSN(0xC000028)
	tests := []struct {
		name   string
		stderr string
		want   bool
	}{
		{"stop exactly at the end is success", "pg_waldump: error: error in WAL record at 0/B606F28: invalid record length at 0/C000028: wanted 24, got 0\n", true},
		{"stop before the end is missing WAL", "pg_waldump: error: error in WAL record at 0/A000F28: invalid record length at 0/A001000: wanted 24, got 0\n", false},
		{"missing file is missing WAL", "pg_waldump: error: could not find file \"00000001000000000000000A\": No such file or directory\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := reachedEnd(tc.stderr, end); got != tc.want {
				t.Errorf("reachedEnd = %v, want %v", got, tc.want)
			}
		})
	}
}
