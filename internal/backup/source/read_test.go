package source

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/pgguard/pgguard/internal/lsn"
)

// makePage builds an initialised heap-like page at relation block blk with
// the given LSN and a valid checksum.
func makePage(at lsn.LSN, blk uint32, fill byte) []byte {
	p := make([]byte, PageSize)
	binary.LittleEndian.PutUint32(p[0:], uint32(at>>32))
	binary.LittleEndian.PutUint32(p[4:], uint32(at))
	binary.LittleEndian.PutUint16(p[12:], 28)   // pd_lower
	binary.LittleEndian.PutUint16(p[14:], 4096) // pd_upper
	binary.LittleEndian.PutUint16(p[16:], PageSize)
	binary.LittleEndian.PutUint16(p[18:], PageSize|4)
	for i := 4096; i < PageSize; i++ {
		p[i] = fill + byte(i)
	}
	binary.LittleEndian.PutUint16(p[8:], PageChecksum(p, blk))
	return p
}

func writeFile(t *testing.T, dir, rel string, pages ...[]byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Join(pages, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

type collected struct {
	offsets []int64
	data    []byte
}

func readCollect(t *testing.T, r FileReader, e Entry, p Plan) (FileResult, collected) {
	t.Helper()
	var c collected
	res, err := r.Read(context.Background(), e, p, func(ch Chunk) error {
		if len(ch.Data)%PageSize != 0 && ch.Offset+int64(len(ch.Data)) != e.Size {
			t.Errorf("chunk at %d of %d bytes is not page-aligned", ch.Offset, len(ch.Data))
		}
		for i := 0; i < len(ch.Data); i += PageSize {
			c.offsets = append(c.offsets, ch.Offset+int64(i))
		}
		c.data = append(c.data, ch.Data...)
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%s): %v", e.Path, err)
	}
	return res, c
}

func TestPageChecksumProperties(t *testing.T) {
	p := makePage(0x1000, 7, 1)
	sum := PageChecksum(p, 7)
	if sum == 0 {
		t.Fatal("checksum 0 is reserved and must never be produced")
	}
	q := slices.Clone(p)
	binary.LittleEndian.PutUint16(q[8:], 0xBEEF)
	if PageChecksum(q, 7) != sum {
		t.Error("checksum depends on the pd_checksum field, which it must ignore")
	}
	if PageChecksum(p, 8) == sum {
		t.Error("checksum does not depend on the block number")
	}
	q = slices.Clone(p)
	q[5000] ^= 0x01
	if PageChecksum(q, 7) == sum {
		t.Error("a flipped bit in the page body does not change the checksum")
	}
}

func TestReadFile(t *testing.T) {
	const start = lsn.LSN(0x5000000)
	dir := t.TempDir()
	good := [][]byte{makePage(0x100, 0, 1), makePage(0x200, 1, 2), makePage(0x300, 2, 3)}
	writeFile(t, dir, "base/5/100", good...)

	bad := [][]byte{makePage(0x100, 0, 1), makePage(0x200, 1, 2), make([]byte, PageSize), makePage(start+10, 3, 4)}
	bad[1][6000] ^= 0xFF // corrupted, old LSN: bad
	bad[3][6000] ^= 0xFF // corrupted but newer than start: left to WAL replay
	writeFile(t, dir, "base/5/101", bad...)

	seg := []([]byte){makePage(0x100, relSegBlocks, 1), makePage(0x100, relSegBlocks+1, 2)}
	writeFile(t, dir, "base/5/102.1", seg...)

	since := lsn.LSN(0x250)
	scan := [][]byte{makePage(0x100, 0, 1), makePage(0x300, 1, 2), makePage(0x100, 2, 3), make([]byte, PageSize), makePage(0x100, 4, 5), makePage(0x100, 5, 6)}
	writeFile(t, dir, "base/5/103", scan...)

	writeFile(t, dir, "pg_xact/0000", []byte("not pages at all"))

	r := FileReader{Tree: testTree(t, dir), ChunkSize: 2 * PageSize, VerifyChecksums: true, StartLSN: start}
	ent := func(rel string, size int64) Entry { return Entry{Path: rel, Mode: 0o600, Size: size} }

	t.Run("good relation file is read whole and every page checked", func(t *testing.T) {
		res, c := readCollect(t, r, ent("base/5/100", 3*PageSize), Plan{Action: ActionReadAll})
		if res.PagesChecked != 3 || len(res.BadPages) != 0 || res.BytesSent != 3*PageSize || res.Size != 3*PageSize {
			t.Errorf("result %+v", res)
		}
		if !bytes.Equal(c.data, bytes.Join(good, nil)) {
			t.Error("data passed on differs from the file")
		}
	})
	t.Run("corrupted old page is reported with its block, new and future pages are not", func(t *testing.T) {
		res, _ := readCollect(t, r, ent("base/5/101", 4*PageSize), Plan{Action: ActionReadAll})
		want := []BadPage{{Path: "base/5/101", Block: 1, Expected: PageChecksum(bad[1], 1), Found: binary.LittleEndian.Uint16(bad[1][8:])}}
		if !slices.Equal(res.BadPages, want) {
			t.Errorf("bad pages %v, want %v", res.BadPages, want)
		}
		if res.PagesChecked != 2 {
			t.Errorf("checked %d pages, want 2 (new page and page newer than start skipped)", res.PagesChecked)
		}
	})
	t.Run("segment files checksum with relation-wide block numbers", func(t *testing.T) {
		res, _ := readCollect(t, r, ent("base/5/102.1", 2*PageSize), Plan{Action: ActionReadAll})
		if res.PagesChecked != 2 || len(res.BadPages) != 0 {
			t.Errorf("result %+v, want 2 pages checked and none bad", res)
		}
	})
	t.Run("scan passes changed, new and grown pages only", func(t *testing.T) {
		res, c := readCollect(t, r, ent("base/5/103", 6*PageSize), Plan{Action: ActionScan, Since: since, PrevSize: 5 * PageSize})
		want := []int64{1 * PageSize, 3 * PageSize, 5 * PageSize}
		if !slices.Equal(c.offsets, want) {
			t.Errorf("pages passed at %v, want %v", c.offsets, want)
		}
		if res.BytesRead != 6*PageSize || res.BytesSent != 3*PageSize {
			t.Errorf("read %d sent %d, want read 6 pages and send 3", res.BytesRead, res.BytesSent)
		}
	})
	t.Run("read-blocks reads only listed blocks and the grown tail", func(t *testing.T) {
		res, c := readCollect(t, r, ent("base/5/103", 6*PageSize), Plan{Action: ActionReadBlocks, Blocks: []uint32{0, 1, 4}, PrevSize: 5 * PageSize})
		want := []int64{0, PageSize, 4 * PageSize, 5 * PageSize}
		if !slices.Equal(c.offsets, want) {
			t.Errorf("pages passed at %v, want %v", c.offsets, want)
		}
		if res.BytesRead != 4*PageSize {
			t.Errorf("read %d bytes, want 4 pages", res.BytesRead)
		}
		if !bytes.Equal(c.data[:PageSize], scan[0]) || !bytes.Equal(c.data[3*PageSize:], scan[5]) {
			t.Error("block content differs from the file")
		}
	})
	t.Run("file that shrank after the walk ends where it ends now", func(t *testing.T) {
		res, c := readCollect(t, r, ent("base/5/100", 5*PageSize), Plan{Action: ActionReadAll})
		if res.Size != 3*PageSize || len(c.data) != 3*PageSize {
			t.Errorf("size %d, passed %d bytes; want 3 pages", res.Size, len(c.data))
		}
	})
	t.Run("file dropped after the walk is empty, not an error", func(t *testing.T) {
		res, c := readCollect(t, r, ent("base/5/999", PageSize), Plan{Action: ActionReadAll})
		if res.Size != 0 || len(c.data) != 0 {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("non-relation file is read whole and not checked", func(t *testing.T) {
		res, c := readCollect(t, r, ent("pg_xact/0000", 16), Plan{Action: ActionReadAll})
		if string(c.data) != "not pages at all" || res.PagesChecked != 0 {
			t.Errorf("got %q, %+v", c.data, res)
		}
	})
	t.Run("from-previous reads nothing", func(t *testing.T) {
		res, c := readCollect(t, r, ent("base/5/100", 3*PageSize), Plan{Action: ActionFromPrevious})
		if res.BytesRead != 0 || len(c.data) != 0 || res.Size != 3*PageSize {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("chunk size that is not page-aligned is refused", func(t *testing.T) {
		r := r
		r.ChunkSize = 1000
		if _, err := r.Read(context.Background(), ent("base/5/100", 3*PageSize), Plan{Action: ActionReadAll}, func(Chunk) error { return nil }); err == nil {
			t.Error("no error for chunk size 1000")
		}
	})
}

// memSink records what Read passes on, safely from many goroutines.
type memSink struct {
	mu    sync.Mutex
	files map[string][]byte
	plans map[string]Plan
}

type memWriter struct {
	s    *memSink
	path string
	buf  []byte
}

func (s *memSink) StartFile(_ context.Context, e Entry, p Plan) (FileWriter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans[e.Path] = p
	return &memWriter{s: s, path: e.Path}, nil
}

func (w *memWriter) WriteChunk(c Chunk) error {
	if need := c.Offset + int64(len(c.Data)); int64(len(w.buf)) < need {
		w.buf = append(w.buf, make([]byte, need-int64(len(w.buf)))...)
	}
	copy(w.buf[c.Offset:], c.Data)
	return nil
}

func (w *memWriter) Finish(r FileResult) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.files[w.path] = w.buf
	return nil
}

func TestReadPassesEveryEntryInParallel(t *testing.T) {
	dir := t.TempDir()
	var want = map[string][]byte{}
	for i := range 40 {
		rel := filepath.ToSlash(filepath.Join("base", "5", string(rune('1'+i%9))+"000"+string(rune('0'+i/9))))
		pages := [][]byte{makePage(0x100, 0, byte(i)), makePage(0x100, 1, byte(i+1))}
		writeFile(t, dir, rel, pages...)
		want[rel] = bytes.Join(pages, nil)
	}
	writeFile(t, dir, "postmaster.pid", []byte("123"))
	writeFile(t, dir, "PG_VERSION", []byte("15\n"))
	sink := &memSink{files: map[string][]byte{}, plans: map[string]Plan{}}
	st, err := Read(context.Background(), Options{DataDir: dir, Channels: 8, ChunkSize: PageSize, VerifyChecksums: true, StartLSN: 0x1000}, sink)
	if err != nil {
		t.Fatal(err)
	}
	for rel, data := range want {
		if !bytes.Equal(sink.files[rel], data) {
			t.Errorf("%s: sink got %d bytes, want the file's %d", rel, len(sink.files[rel]), len(data))
		}
	}
	if _, ok := sink.plans["postmaster.pid"]; ok {
		t.Error("postmaster.pid reached the sink")
	}
	if st.PagesChecked != 80 || len(st.BadPages) != 0 || st.BytesRead != 80*PageSize+3 || st.FilesRead != 41 {
		t.Errorf("stats %+v", st)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"one channel is allowed", Options{DataDir: "/d", Channels: 1}, true},
		{"255 channels are allowed", Options{DataDir: "/d", Channels: 255}, true},
		{"zero channels are refused", Options{DataDir: "/d", Channels: 0}, false},
		{"256 channels are refused", Options{DataDir: "/d", Channels: 256}, false},
		{"unaligned chunk size is refused", Options{DataDir: "/d", Channels: 1, ChunkSize: 4096}, false},
		{"missing data directory is refused", Options{Channels: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// testTree opens dir as a data directory (writing its PG_VERSION).
func testTree(tb testing.TB, dir string) *Tree {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	tr, err := OpenTree(dir)
	if err != nil {
		tb.Fatalf("open %s as a data directory: %v", dir, err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}
