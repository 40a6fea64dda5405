package pg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/lsn"
)

const (
	testSeg   = 1 << 20 // initdb --wal-segsize=1
	testBlock = 8192
)

// writeSegment writes a WAL segment file of timeline tli, segment segno,
// whose pages up to (not including) validTo hold a header (a non-zero
// xlp_magic and their own address) followed by bytes of value fill; the
// rest is zeros.
func writeSegment(t *testing.T, dir string, tli uint32, segno, validTo uint64, fill byte) string {
	t.Helper()
	b := make([]byte, testSeg)
	for off := uint64(0); off < validTo && off < testSeg; off += testBlock {
		binary.LittleEndian.PutUint16(b[off:], 0xD110) // PostgreSQL 15's XLOG_PAGE_MAGIC
		binary.LittleEndian.PutUint64(b[off+8:], segno*testSeg+off)
		for i := off + 40; i < off+testBlock; i++ {
			b[i] = fill
		}
	}
	if validTo > 0 {
		binary.LittleEndian.PutUint32(b[32:], testSeg)
		binary.LittleEndian.PutUint32(b[36:], testBlock)
	}
	name := lsn.SegmentName(tli, segno, testSeg)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func writeHistory(t *testing.T, dir string, tli uint32, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%08X.history", tli)), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A standby's copy of the new timeline's switch segment that ends before
// the switch point is completed from the parent's copy up to the switch
// point, and only there (chaos finding 19); in every other case it is
// left as it is.
func TestShortCopyOfTheSwitchSegmentIsCompletedUpToTheSwitch(t *testing.T) {
	const segno = 8
	switchOff := uint64(70*testBlock + 0x748) // in page 70
	history := fmt.Sprintf("1\t0/%X\tno recovery target specified\n", segno*testSeg+switchOff)
	for _, tc := range []struct {
		what           string
		parent, copyTo uint64 // valid pages up to; parent 0: no parent file
		change         func(parent, short []byte)
		completed      bool
		refused        string // the error, when the copy is one but cannot be completed
	}{
		{what: "the copy ends 60 pages before the switch", parent: 71 * testBlock, copyTo: 10 * testBlock, completed: true},
		{what: "the copy has nothing", parent: 71 * testBlock, copyTo: 0, completed: true},
		{what: "the parent holds WAL beyond the switch: none of it is copied", parent: 90 * testBlock, copyTo: 10 * testBlock, completed: true},
		{what: "the copy reaches the switch page", parent: 71 * testBlock, copyTo: 71 * testBlock},
		{what: "the copy is complete", parent: 71 * testBlock, copyTo: testSeg},
		{what: "no parent file", copyTo: 10 * testBlock},
		{what: "the parent ends before the copy does", parent: 5 * testBlock, copyTo: 10 * testBlock, refused: "holds no WAL of its own address"},
		{what: "the parent ends before the switch", parent: 40 * testBlock, copyTo: 10 * testBlock, refused: "holds no WAL of its own address"},
		{what: "a parent page of another address (a recycled file)", parent: 71 * testBlock, copyTo: 10 * testBlock,
			change:  func(parent, _ []byte) { binary.LittleEndian.PutUint64(parent[30*testBlock+8:], 3*testSeg) },
			refused: "holds no WAL of its own address"},
		{what: "a byte that is not zero in the copy's gap", parent: 71 * testBlock, copyTo: 10 * testBlock,
			change:  func(_, short []byte) { short[20*testBlock+100] = 1 },
			refused: "is not zero"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			dir := t.TempDir()
			writeHistory(t, dir, 2, history)
			parentPath := ""
			if tc.parent > 0 {
				parentPath = filepath.Join(dir, writeSegment(t, dir, 1, segno, tc.parent, 0xAA))
			}
			path := filepath.Join(dir, writeSegment(t, dir, 2, segno, tc.copyTo, 0xAA))
			if tc.change != nil {
				parent, short := readFile(t, parentPath), readFile(t, path)
				tc.change(parent, short)
				for p, b := range map[string][]byte{parentPath: parent, path: short} {
					if err := os.WriteFile(p, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := readFile(t, path)
			done, err := CompleteShortCopies(dir)
			after := readFile(t, path)
			switch {
			case tc.refused != "":
				if err == nil || !strings.Contains(err.Error(), tc.refused) || len(done) != 0 || !bytes.Equal(before, after) {
					t.Fatalf("completed %v, err %v, copy changed %v; want it refused (%q) and unchanged", done, err, !bytes.Equal(before, after), tc.refused)
				}
			case !tc.completed:
				if err != nil || len(done) != 0 || !bytes.Equal(before, after) {
					t.Fatalf("completed %v, err %v, copy changed %v; want it left alone", done, err, !bytes.Equal(before, after))
				}
			default:
				if err != nil || len(done) != 1 || done[0] != filepath.Base(path) {
					t.Fatalf("completed %v, err %v; want %s", done, err, filepath.Base(path))
				}
				parent := readFile(t, parentPath)
				if !bytes.Equal(after[:switchOff], parent[:switchOff]) {
					t.Fatal("the completed copy differs from the parent's below the switch point")
				}
				if !bytes.Equal(after[switchOff:], make([]byte, testSeg-switchOff)) {
					t.Fatal("the completed copy holds bytes at or beyond the switch point")
				}
			}
		})
	}
}

// A switch at a segment boundary leaves the new timeline's first segment
// alone: it holds no WAL of the parent.
func TestASwitchAtASegmentBoundaryChangesNothing(t *testing.T) {
	dir := t.TempDir()
	writeHistory(t, dir, 2, fmt.Sprintf("1\t0/%X\treason\n", uint64(9*testSeg)))
	writeSegment(t, dir, 1, 8, testSeg, 0xAA)
	writeSegment(t, dir, 1, 9, testSeg, 0xAA)
	writeSegment(t, dir, 2, 9, 0, 0)
	if done, err := CompleteShortCopies(dir); err != nil || len(done) != 0 {
		t.Fatalf("completed %v, %v; want nothing", done, err)
	}
}
