package repo

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
)

// The block index of a repository grows with every block ever stored: a
// million blocks after a few dozen backups of a busy database. Held as Go
// maps it cost about 400 bytes a block in a backup or restore (issue 16:
// 572 MiB of RSS for a backup over a repository of a million blocks). A
// table instead holds the entries loaded from the index objects as
// fixed-size records sorted by block id: in memory while they fit in one
// run (tableRunBytes), else in an unlinked temporary file, sorted there by
// merging runs, and read with one pread of a page or two a lookup. Memory
// is then a run buffer while the table is built and, after, eight bytes
// per 64 records (the first id prefix of each page), whatever the
// repository's size.

// recSize is one table record:
//
//	[32 id][8 offset][4 length][4 raw length][4 sum][4 pack ordinal][1 comp|entrySumFlag][7 zero]
const recSize = 64

// pageRecs records make a page, the unit of a lookup's read.
const pageRecs = 4096 / recSize

// tableRunBytes is the largest table kept in memory and the size of one
// sorted run of a table built on disk.
var tableRunBytes = 4 << 20

func putRec(b []byte, e packEntry, pack uint32) {
	copy(b[:32], e.ID[:])
	binary.LittleEndian.PutUint64(b[32:], e.Offset)
	binary.LittleEndian.PutUint32(b[40:], e.Length)
	binary.LittleEndian.PutUint32(b[44:], e.RawLen)
	binary.LittleEndian.PutUint32(b[48:], e.Sum)
	binary.LittleEndian.PutUint32(b[52:], pack)
	b[56] = e.Comp
	if e.HasSum {
		b[56] |= entrySumFlag
	}
	clear(b[57:recSize])
}

func getRec(b []byte) (packEntry, uint32) {
	var e packEntry
	copy(e.ID[:], b[:32])
	e.Offset = binary.LittleEndian.Uint64(b[32:])
	e.Length = binary.LittleEndian.Uint32(b[40:])
	e.RawLen = binary.LittleEndian.Uint32(b[44:])
	e.Sum = binary.LittleEndian.Uint32(b[48:])
	e.Comp = b[56] &^ entrySumFlag
	e.HasSum = b[56]&entrySumFlag != 0
	if !e.HasSum {
		e.Sum = 0
	}
	return e, binary.LittleEndian.Uint32(b[52:])
}

// records sorts a buffer of records by id.
type records []byte

func (r records) Len() int { return len(r) / recSize }
func (r records) Less(i, j int) bool {
	return bytes.Compare(r[i*recSize:i*recSize+32], r[j*recSize:j*recSize+32]) < 0
}
func (r records) Swap(i, j int) {
	var t [recSize]byte
	a, b := r[i*recSize:(i+1)*recSize], r[j*recSize:(j+1)*recSize]
	copy(t[:], a)
	copy(a, b)
	copy(b, t[:])
}

// search returns the first record of r whose id is not less than id.
func (r records) search(id []byte) int {
	return sort.Search(r.Len(), func(i int) bool { return bytes.Compare(r[i*recSize:i*recSize+32], id) >= 0 })
}

// find returns the record of id in sorted r.
func (r records) find(id []byte) ([]byte, bool) {
	i := r.search(id)
	if i < r.Len() && bytes.Equal(r[i*recSize:i*recSize+32], id) {
		return r[i*recSize : (i+1)*recSize], true
	}
	return nil, false
}

// table is an immutable set of records sorted by id, without duplicate
// ids: in memory (mem) or in an unlinked file (f) with the first id
// prefix of each page in fences.
type table struct {
	mem    records
	f      *scrambledFile
	n      int
	fences []uint64
	pages  sync.Pool // *[]byte, two pages
	errMu  sync.Mutex
	err    error // the first read error: lookups then miss
}

func (t *table) len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// lookup returns the entry of id and its pack ordinal.
func (t *table) lookup(id BlockID) (packEntry, uint32, bool) {
	if t == nil || t.n == 0 {
		return packEntry{}, 0, false
	}
	if t.f == nil {
		rec, ok := t.mem.find(id[:])
		if !ok {
			return packEntry{}, 0, false
		}
		e, p := getRec(rec)
		return e, p, true
	}
	// Pages whose first id may hold id: from the last page starting below
	// its prefix (id may lie at its end) through the last page starting
	// with that prefix.
	k := binary.BigEndian.Uint64(id[:8])
	lo := sort.Search(len(t.fences), func(i int) bool { return t.fences[i] >= k }) - 1
	hi := sort.Search(len(t.fences), func(i int) bool { return t.fences[i] > k })
	lo = max(lo, 0)
	if hi == 0 {
		return packEntry{}, 0, false
	}
	start, end := lo*pageRecs, min(hi*pageRecs, t.n)
	size := (end - start) * recSize
	bp, _ := t.pages.Get().(*[]byte)
	if bp == nil || cap(*bp) < size {
		b := make([]byte, max(size, 2*pageRecs*recSize))
		bp = &b
	}
	defer t.pages.Put(bp)
	buf := (*bp)[:size]
	if _, err := t.f.ReadAt(buf, int64(start)*recSize); err != nil {
		t.errMu.Lock()
		if t.err == nil {
			t.err = fmt.Errorf("read the block index table: %w", err)
		}
		t.errMu.Unlock()
		return packEntry{}, 0, false
	}
	rec, ok := records(buf).find(id[:])
	if !ok {
		return packEntry{}, 0, false
	}
	e, p := getRec(rec)
	return e, p, true
}

// readErr is the first error a lookup met reading the table's file.
func (t *table) readErr() error {
	if t == nil {
		return nil
	}
	t.errMu.Lock()
	defer t.errMu.Unlock()
	return t.err
}

func (t *table) close() {
	if t != nil && t.f != nil {
		t.f.Close()
	}
}

// tableBuilder collects records in runs of tableRunBytes; a table larger
// than one run is sorted on disk in dir.
type tableBuilder struct {
	dir   string
	run   records
	spill *scrambledFile
	runs  []int64 // record counts of the runs in spill, in order
}

func newTableBuilder(dir string) *tableBuilder { return &tableBuilder{dir: dir} }

func (b *tableBuilder) add(e packEntry, pack uint32) error {
	limit := max(tableRunBytes/recSize, 1) * recSize
	if len(b.run)+recSize > cap(b.run) {
		if cap(b.run) >= limit {
			if err := b.flushRun(); err != nil {
				return err
			}
		} else {
			// Grown to what a small repository needs, not to a run.
			grown := make(records, len(b.run), min(max(2*cap(b.run), 64<<10/recSize*recSize), limit))
			copy(grown, b.run)
			b.run = grown
		}
	}
	n := len(b.run)
	b.run = b.run[:n+recSize]
	putRec(b.run[n:], e, pack)
	return nil
}

func (b *tableBuilder) flushRun() error {
	if len(b.run) == 0 {
		return nil
	}
	if b.spill == nil {
		f, err := scrambledTempFile(b.dir, "index-runs")
		if err != nil {
			return err
		}
		b.spill = f
	}
	sort.Sort(b.run)
	if _, err := b.spill.Write(b.run); err != nil {
		return fmt.Errorf("write the block index runs: %w", err)
	}
	b.runs = append(b.runs, int64(b.run.Len()))
	b.run = b.run[:0]
	return nil
}

// finish returns the table. Duplicate ids keep one record (any copy of a
// block is as good as another).
func (b *tableBuilder) finish() (*table, error) {
	if b.spill == nil {
		sort.Sort(b.run)
		out := b.run[:0]
		for i := 0; i < len(b.run); i += recSize {
			rec := b.run[i : i+recSize]
			if len(out) > 0 && bytes.Equal(out[len(out)-recSize:len(out)-recSize+32], rec[:32]) {
				continue
			}
			out = append(out, rec...)
		}
		return &table{mem: out, n: out.Len()}, nil
	}
	defer b.spill.Close()
	if err := b.flushRun(); err != nil {
		return nil, err
	}
	b.run = nil // the merge's buffers take its place
	return b.merge()
}

// runCursor reads one sorted run of the spill file.
type runCursor struct {
	f        *scrambledFile
	off, end int64 // next byte to read, end of the run
	buf      []byte
	pos      int
}

func (c *runCursor) cur() []byte { return c.buf[c.pos : c.pos+recSize] }

// next advances; false at the end of the run.
func (c *runCursor) next() (bool, error) {
	c.pos += recSize
	if c.pos < len(c.buf) {
		return true, nil
	}
	if c.off >= c.end {
		return false, nil
	}
	n := min(int64(cap(c.buf)), c.end-c.off)
	c.buf = c.buf[:n]
	if _, err := c.f.ReadAt(c.buf, c.off); err != nil {
		return false, fmt.Errorf("read the block index runs: %w", err)
	}
	c.off += n
	c.pos = 0
	return true, nil
}

type cursorHeap []*runCursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return bytes.Compare(h[i].cur()[:32], h[j].cur()[:32]) < 0 }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*runCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// merge merges the sorted runs into the table's file, with read buffers
// sharing one run's worth of memory.
func (b *tableBuilder) merge() (*table, error) {
	per := max(tableRunBytes/len(b.runs)/recSize*recSize, 4096)
	h := make(cursorHeap, 0, len(b.runs))
	var off int64
	for _, n := range b.runs {
		c := &runCursor{f: b.spill, off: off, end: off + n*recSize, buf: make([]byte, 0, per), pos: -recSize}
		off = c.end
		ok, err := c.next()
		if err != nil {
			return nil, err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	out, err := scrambledTempFile(b.dir, "index")
	if err != nil {
		return nil, err
	}
	t := &table{f: out}
	w := bufio.NewWriterSize(out, 256<<10)
	var last [32]byte
	for len(h) > 0 {
		c := h[0]
		rec := c.cur()
		if t.n == 0 || !bytes.Equal(rec[:32], last[:]) {
			if t.n%pageRecs == 0 {
				t.fences = append(t.fences, binary.BigEndian.Uint64(rec[:8]))
			}
			copy(last[:], rec[:32])
			if _, err := w.Write(rec); err != nil {
				out.Close()
				return nil, fmt.Errorf("write the block index table: %w", err)
			}
			t.n++
		}
		ok, err := c.next()
		if err != nil {
			out.Close()
			return nil, err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return nil, fmt.Errorf("write the block index table: %w", err)
	}
	return t, nil
}
