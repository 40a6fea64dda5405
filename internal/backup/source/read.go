package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Chunk is a piece of a file at Offset. Data is page-aligned (a whole number
// of pages, except a file's partial last page) and is only valid until the
// callback that received it returns.
type Chunk struct {
	Offset int64
	Data   []byte
}

// BadPage is a page whose checksum did not match, read twice.
type BadPage struct {
	Path     string // relative to PGDATA
	Block    uint32 // within the file
	Expected uint16 // computed from the content
	Found    uint16 // pd_checksum on the page
}

func (b BadPage) String() string {
	return fmt.Sprintf("%s block %d: checksum %#04x on page, computed %#04x", b.Path, b.Block, b.Found, b.Expected)
}

// FileResult is what reading one file found.
type FileResult struct {
	// Size of the file as read: the entry size, or less if the file shrank
	// while it was read. Growth after the walk is not read; WAL replay
	// recreates it.
	Size         int64
	BytesRead    int64 // from disk
	BytesSent    int64 // passed on as chunks
	PagesChecked int64
	BadPages     []BadPage
}

// FileReader reads files of one data directory for one backup.
type FileReader struct {
	// Tree is the data directory the files are opened from (OpenTree).
	Tree      *Tree
	ChunkSize int // bytes per chunk, a multiple of PageSize
	// VerifyChecksums validates page checksums of relation files (set when
	// the cluster has data_checksums on).
	VerifyChecksums bool
	// StartLSN of this backup: pages newer than it are being written and
	// are left to WAL replay rather than checked.
	StartLSN lsn.LSN
	// ReadLimit, when set, waits after each read to keep to a read rate.
	ReadLimit func(ctx context.Context, n int) error
}

// Read reads e according to p and passes its data to emit, in ascending
// offsets. A file that vanished is returned with Size 0 and no error only if
// it was dropped (not found); other errors are returned.
func (r FileReader) Read(ctx context.Context, e Entry, p Plan, emit func(Chunk) error) (FileResult, error) {
	res := FileResult{Size: e.Size}
	switch p.Action {
	case ActionNone, ActionFromPrevious:
		return res, nil
	}
	if r.ChunkSize <= 0 || r.ChunkSize%PageSize != 0 {
		return res, fmt.Errorf("read %s: chunk size %d is not a positive multiple of %d", e.Path, r.ChunkSize, PageSize)
	}
	f, err := r.Tree.Open(e.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			res.Size = 0
			return res, nil // dropped during the backup; WAL replay drops it too
		}
		return res, fmt.Errorf("read %s: %w", e.Path, err)
	}
	defer f.Close()
	st := fileState{ctx: ctx, r: r, e: e, p: p, f: f, res: &res, emit: emit}
	if rf, ok := ParseRelFile(e.Path); ok {
		st.rel, st.firstBlock = true, rf.Segment*relSegBlocks
	}
	// No larger than the file: most files of a data directory are a few
	// pages, and a chunk-sized buffer for each was a GiB of garbage per
	// backup of a pgbench database.
	st.buf = make([]byte, min(int64(r.ChunkSize), max(PageSize, (e.Size+PageSize-1)/PageSize*PageSize)))
	if p.Action == ActionReadBlocks {
		err = st.readBlocks(ctx)
	} else {
		err = st.readRange(ctx, 0, e.Size)
	}
	return res, err
}

type fileState struct {
	ctx        context.Context
	r          FileReader
	e          Entry
	p          Plan
	f          *os.File
	res        *FileResult
	emit       func(Chunk) error
	buf        []byte
	rel        bool
	firstBlock uint32 // relation-wide number of the file's block 0
	page       [PageSize]byte
}

// readRange reads [from, to) chunk by chunk. A short read means the file
// shrank: the result size is cut there and reading stops.
func (s *fileState) readRange(ctx context.Context, from, to int64) error {
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, eof, err := s.readAt(off, int(min(int64(len(s.buf)), to-off)))
		if err != nil {
			return err
		}
		if err := s.pass(off, s.buf[:n]); err != nil {
			return err
		}
		off += int64(n)
		if eof {
			s.res.Size = off
			return nil
		}
	}
	return nil
}

// readBlocks reads the listed blocks (in runs of consecutive blocks) and
// then everything from PrevSize on.
func (s *fileState) readBlocks(ctx context.Context) error {
	tail := s.p.PrevSize
	bl := s.p.Blocks
	for len(bl) > 0 {
		run := 1
		for run < len(bl) && run*PageSize < len(s.buf) && bl[run] == bl[0]+uint32(run) {
			run++
		}
		off := int64(bl[0]) * PageSize
		bl = bl[run:]
		if off >= min(tail, s.e.Size) {
			continue // covered by the tail read
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, eof, err := s.readAt(off, int(min(int64(run*PageSize), min(tail, s.e.Size)-off)))
		if err != nil {
			return err
		}
		if err := s.pass(off, s.buf[:n]); err != nil {
			return err
		}
		if eof {
			s.res.Size = off + int64(n)
			return nil
		}
	}
	return s.readRange(ctx, tail, s.e.Size)
}

func (s *fileState) readAt(off int64, n int) (int, bool, error) {
	got, err := s.f.ReadAt(s.buf[:n], off)
	s.res.BytesRead += int64(got)
	if s.r.ReadLimit != nil {
		if lerr := s.r.ReadLimit(s.ctx, got); lerr != nil {
			return got, false, lerr
		}
	}
	if err == io.EOF {
		return got, true, nil
	}
	if err != nil {
		return got, false, fmt.Errorf("read %s at %d: %w", s.e.Path, off, err)
	}
	return got, false, nil
}

// pass checks the pages of data (read at off) and emits the ones the plan
// wants, coalescing neighbours into one chunk.
func (s *fileState) pass(off int64, data []byte) error {
	if !s.rel {
		return s.send(off, data)
	}
	runStart := -1
	for i := 0; i < len(data); i += PageSize {
		end := min(i+PageSize, len(data))
		page := data[i:end]
		pageOff := off + int64(i)
		if len(page) == PageSize {
			if err := s.check(pageOff, page); err != nil {
				return err
			}
		}
		if s.wanted(pageOff, page) {
			if runStart < 0 {
				runStart = i
			}
			continue
		}
		if runStart >= 0 {
			if err := s.send(off+int64(runStart), data[runStart:i]); err != nil {
				return err
			}
			runStart = -1
		}
	}
	if runStart >= 0 {
		return s.send(off+int64(runStart), data[runStart:])
	}
	return nil
}

func (s *fileState) send(off int64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	s.res.BytesSent += int64(len(data))
	return s.emit(Chunk{Offset: off, Data: data})
}

// wanted says whether a page read under the plan is passed on.
func (s *fileState) wanted(off int64, page []byte) bool {
	if s.p.Action != ActionScan || len(page) < PageSize || off >= s.p.PrevSize {
		return true
	}
	// New pages are passed too: the previous backup may hold an older,
	// non-empty page at this place (the relation was truncated and extended).
	return pageIsNew(page) || readPageHeader(page).LSN >= s.p.Since
}

// check validates one full page's checksum; on a mismatch it reads the page
// again once, since a concurrent write may have torn the first read, and
// records it as bad only if the second read fails too. The re-read content
// replaces the first in page.
func (s *fileState) check(off int64, page []byte) error {
	if !s.r.VerifyChecksums || !s.needsCheck(page) {
		return nil
	}
	s.res.PagesChecked++
	blk := uint32(off / PageSize)
	if PageChecksum(page, s.firstBlock+blk) == readPageHeader(page).Checksum {
		return nil
	}
	n, err := s.f.ReadAt(s.page[:], off)
	if err != nil && err != io.EOF {
		return fmt.Errorf("re-read %s block %d: %w", s.e.Path, blk, err)
	}
	if n == PageSize {
		copy(page, s.page[:])
		if !s.needsCheck(page) {
			return nil
		}
	}
	if sum := PageChecksum(page, s.firstBlock+blk); sum != readPageHeader(page).Checksum {
		s.res.BadPages = append(s.res.BadPages, BadPage{Path: s.e.Path, Block: blk, Expected: sum, Found: readPageHeader(page).Checksum})
	}
	return nil
}

// needsCheck: new pages carry no checksum, and pages newer than the backup
// start are being written (WAL replay will rewrite them).
func (s *fileState) needsCheck(page []byte) bool {
	return !pageIsNew(page) && readPageHeader(page).LSN < s.r.StartLSN
}
