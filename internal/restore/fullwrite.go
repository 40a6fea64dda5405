package restore

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/pgguard/pgguard/internal/repo"
)

// A restore into an empty directory is planned from the manifest as a
// sequence of windows: a window is up to windowBytes of consecutive file
// content (a stretch of one large file, or several whole small files),
// assembled in memory and written with one pwrite per file (O_DIRECT for
// large files). For each window, the blocks it needs are loaded once,
// pack by pack in runs of adjacent blobs (repo.LoadBlocks), and decoded
// straight into the window where the block lies in the file as it is
// stored:
//
//   - a block used whole (a full backup's, or an incremental's changed
//     pages) is decompressed into its place, with no copy;
//   - an older block of which an incremental keeps only the pages around
//     changed ones is decompressed whole into the place it had in the
//     file, first, and the newer pages are then decompressed over it: the
//     pages in between are overlaid in place;
//   - anything else (a block at another offset, e.g. the same content in
//     two places, or one whose place overlaps another such block's) goes
//     through a scratch buffer and is copied.
//
// Windows are cut where no block used before the cut is used after it,
// so that each block is loaded and decoded once. Each channel loads the
// next window's blocks while it decodes one and writes the one before.
//
// Going by pack instead (the previous plan) decoded each block once too,
// but wrote its pieces one by one in pack order: 87,000 pwrites of 17 KiB
// on average at scattered offsets of a pgbench scale-100 incremental's
// files, which took more CPU (in the kernel) than the hashing and the
// decompression together.

// windowBytes is the content a window aims at. Each channel holds one
// window (and the stored bytes of its blocks); larger windows mean fewer
// ranged reads (a request each on S3) and larger writes.
var windowBytes int64 = 8 << 20

// Large files are written with O_DIRECT, from the window's buffer
// straight to the disk: through the page cache, the kernel's copy, page
// allocation and later writeback cost as much CPU as the decoding (0.5 to
// 3 s of system time for the 1.5 GB of a pgbench scale-100 database on
// the project machine, against 0.05 s direct), and the final syncfs then
// has little left to wait for. A segment that is not aligned to
// directAlign (offset, length and buffer) goes through the page cache, as
// do small files.
const (
	directAlign   = 4096
	directMinSize = 256 << 10
)

// maxOpenFiles bounds the restored files kept open between writes (only
// files that several windows write stay open, a few per channel).
const maxOpenFiles = 128

// fullPlan says which windows restore a set of files, and where every
// block is.
type fullPlan struct {
	files    []repo.FileEntry
	windows  []window
	locs     map[repo.BlockID]repo.BlockLoc
	segsLeft []atomic.Int32 // per file, segments still to write
}

// window is content of consecutive segments, laid out one after the
// other in a buffer.
type window struct {
	segs []segment
	size int64
}

// segment is a stretch [off, off+size) of one file, made of refs.
type segment struct {
	file   int
	refs   []repo.BlockRef
	off    int64 // in the file
	size   int64
	bufOff int64 // in the window's buffer
}

// planFull checks the files' block lists against their sizes and the
// index, so that a damaged backup is refused before anything is written,
// and cuts the files into windows.
func (w *writer) planFull(files []repo.FileEntry) (*fullPlan, error) {
	p := &fullPlan{files: files, locs: map[repo.BlockID]repo.BlockLoc{}, segsLeft: make([]atomic.Int32, len(files))}
	order := make([]int, 0, len(files))
	for i := range files {
		f := &files[i]
		var size int64
		for _, ref := range f.Blocks {
			if _, ok := p.locs[ref.ID]; !ok {
				loc, err := w.r.LocateBlock(ref.ID)
				if err != nil {
					return nil, fmt.Errorf("backup %s: %w", w.m.ID, err)
				}
				p.locs[ref.ID] = loc
			}
			if ref.Length < 0 || ref.BlockOffset < 0 || ref.BlockOffset+ref.Length > p.locs[ref.ID].RawLen() {
				return nil, fmt.Errorf("restore %s: block %s has %d bytes, manifest wants %d at %d: run pgguard verify --backup %s", f.Path, ref.ID.Short(), p.locs[ref.ID].RawLen(), ref.Length, ref.BlockOffset, w.m.ID)
			}
			size += ref.Length
		}
		if size != f.Size {
			return nil, fmt.Errorf("restore %s: its blocks cover %d bytes, the manifest says %d: run pgguard verify --backup %s", f.Path, size, f.Size, w.m.ID)
		}
		if f.Size > 0 {
			order = append(order, i)
		}
	}
	// Files in the order their first blocks are stored, so that the small
	// files sharing a window share its ranged reads too.
	first := func(i int) repo.BlockLoc { return p.locs[files[i].Blocks[0].ID] }
	slices.SortStableFunc(order, func(a, b int) int { return first(a).Compare(first(b)) })
	var cur window
	flush := func() {
		if len(cur.segs) > 0 {
			p.windows = append(p.windows, cur)
		}
		cur = window{}
	}
	last := map[repo.BlockID]int{}
	for _, i := range order {
		f := &files[i]
		// Each segment starts aligned in the buffer, for O_DIRECT.
		at := alignUp(cur.size)
		if f.Size > windowBytes-at {
			flush()
			at = 0
		}
		if f.Size <= windowBytes {
			cur.segs = append(cur.segs, segment{file: i, refs: f.Blocks, size: f.Size, bufOff: at})
			cur.size = at + f.Size
			p.segsLeft[i].Store(1)
			continue
		}
		// A large file: windows of its own, cut after a ref when no block
		// used so far is used again later (or, failing that for half a
		// window more, anyway: the block is then loaded twice).
		clear(last)
		for j, ref := range f.Blocks {
			last[ref.ID] = j
		}
		var off, segStart int64
		from, reach := 0, 0
		for j, ref := range f.Blocks {
			reach = max(reach, last[ref.ID])
			off += ref.Length
			size := off - segStart
			if j == len(f.Blocks)-1 || (size >= windowBytes && reach == j) || size >= windowBytes+windowBytes/2 {
				p.windows = append(p.windows, window{segs: []segment{{file: i, refs: f.Blocks[from : j+1], off: segStart, size: size}}, size: size})
				p.segsLeft[i].Add(1)
				from, segStart = j+1, off
			}
		}
	}
	flush()
	return p, nil
}

// writePlan restores the planned files into an empty directory, one
// window at a time on each of channels goroutines.
func (w *writer) writePlan(ctx context.Context, p *fullPlan, channels int) error {
	h := newHandles(w, p.files, maxOpenFiles)
	defer h.closeAll()
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	take := func() int {
		i := int(next.Add(1) - 1)
		if i >= len(p.windows) || gctx.Err() != nil {
			return -1
		}
		return i
	}
	for range min(max(channels, 1), max(len(p.windows), 1)) {
		g.Go(func() error {
			ww := &windowWriter{w: w, p: p, h: h, br: w.r.NewBlockReader()}
			return ww.run(gctx, take)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range p.files {
		if p.files[i].Size == 0 {
			if err := h.create(i); err != nil {
				return err
			}
			if err := w.finishFile(h, &p.files[i], i); err != nil {
				return err
			}
		}
	}
	return h.closeAll()
}

// windowWriter is one channel: while it decodes one window into its
// buffer, the blocks of the next window are being loaded and the window
// before is being written, so that the storage, the CPU and the disk
// work at once.
type windowWriter struct {
	w       *writer
	p       *fullPlan
	h       *handles
	br      *repo.BlockReader
	st      [2]windowState
	pending chan error // the write in flight, or nil
}

// windowState is one window from the loading of its blocks to its write;
// its buffer is written from while the other state's window is decoded.
type windowState struct {
	win    *window
	buf    []byte
	blocks map[repo.BlockID]int32 // index in uses
	uses   []blockUse
	pcs    []piece
	spans  []span
	reqs   []repo.BlockRequest // pass 1, then pass 2 from pass1 on
	reqUse []int32
	pass1  int
	loaded repo.LoadedBlocks
}

// blockUse is where a window needs one block: its pieces (positions in
// the window's buffer) and whether it is decoded in place.
type blockUse struct {
	id         repo.BlockID
	loc        repo.BlockLoc
	head, tail int32 // its pieces, linked through piece.next
	covered    int64 // bytes of its pieces
	seg        int   // segment of the first piece
	natural    int64 // buffer position of the block's start if every piece is where the block puts it, else -1
	direct     bool  // decoded into buf[natural:]
}

type piece struct {
	at, blockOff, length int64
	next                 int32 // -1 at the end
}

type span struct {
	start, end int64
	use        int32
}

// run restores the windows that take hands out until it returns -1.
func (ww *windowWriter) run(ctx context.Context, take func() int) (err error) {
	defer func() {
		if werr := ww.wait(); err == nil {
			err = werr
		}
	}()
	i := take()
	if i < 0 {
		return nil
	}
	c := 0
	if err := ww.st[c].prepare(ctx, ww.w.r, ww.p, &ww.p.windows[i]); err != nil {
		return err
	}
	for {
		j := take()
		var loaded chan error
		if j >= 0 {
			loaded = make(chan error, 1)
			next := &ww.st[1-c]
			go func() { loaded <- next.prepare(ctx, ww.w.r, ww.p, &ww.p.windows[j]) }()
		}
		err := ww.assemble(ctx, &ww.st[c])
		if err == nil {
			err = ww.startWrite(&ww.st[c])
		}
		if loaded != nil {
			if lerr := <-loaded; err == nil {
				err = lerr
			}
		}
		if err != nil || j < 0 {
			return err
		}
		c = 1 - c
	}
}

// prepare lays window win out in the state's buffer, decides where each
// block is decoded, and loads the blocks' stored bytes. It writes nothing
// into the buffer, which may still be being written to disk.
func (st *windowState) prepare(ctx context.Context, r *repo.Repository, p *fullPlan, win *window) error {
	st.win = win
	st.buf = alignedBuf(st.buf, int(win.size))
	buf := st.buf
	if st.blocks == nil {
		st.blocks = map[repo.BlockID]int32{}
	}
	clear(st.blocks)
	st.uses, st.pcs = st.uses[:0], st.pcs[:0]
	for si, sg := range win.segs {
		at := sg.bufOff
		for _, ref := range sg.refs {
			k, ok := st.blocks[ref.ID]
			pi := int32(len(st.pcs))
			st.pcs = append(st.pcs, piece{at: at, blockOff: ref.BlockOffset, length: ref.Length, next: -1})
			if !ok {
				k = int32(len(st.uses))
				st.blocks[ref.ID] = k
				st.uses = append(st.uses, blockUse{id: ref.ID, loc: p.locs[ref.ID], seg: si, natural: at - ref.BlockOffset, head: pi, tail: pi})
			} else {
				st.pcs[st.uses[k].tail].next = pi
				st.uses[k].tail = pi
			}
			u := &st.uses[k]
			u.covered += ref.Length
			if u.natural != at-ref.BlockOffset || u.seg != si {
				u.natural = -1
			}
			at += ref.Length
		}
	}
	// A block goes in place when it lies inside its segment where its
	// pieces put it. One used whole (its pieces cover it) is decoded
	// straight into place in any order; one used in part is decoded first
	// and the other pieces over it, so no two of those may overlap.
	st.spans = st.spans[:0]
	for k := range st.uses {
		u := &st.uses[k]
		sg := &win.segs[u.seg]
		u.direct = false
		if u.natural < sg.bufOff || u.natural+u.loc.RawLen() > sg.bufOff+sg.size {
			u.natural = -1
			continue
		}
		u.direct = true
		if u.covered != u.loc.RawLen() {
			st.spans = append(st.spans, span{start: u.natural, end: u.natural + u.loc.RawLen(), use: int32(k)})
		}
	}
	slices.SortFunc(st.spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	st.reqs, st.reqUse = st.reqs[:0], st.reqUse[:0]
	// First pass: blocks used in part, whole into place.
	end := int64(-1)
	for _, sp := range st.spans {
		if sp.start < end {
			st.uses[sp.use].direct = false
			continue
		}
		end = sp.end
		st.addReq(sp.use, buf)
	}
	st.pass1 = len(st.reqs)
	// Second pass: everything else.
	for k := range st.uses {
		if u := &st.uses[k]; u.direct && u.covered != u.loc.RawLen() {
			continue // in the first pass
		}
		st.addReq(int32(k), buf)
	}
	// One load for both passes: their blocks often share packs.
	return r.LoadBlocks(ctx, st.reqs, &st.loaded)
}

func (st *windowState) addReq(k int32, buf []byte) {
	u := &st.uses[k]
	q := repo.BlockRequest{ID: u.id, Loc: u.loc}
	if u.direct {
		q.Dst = buf[u.natural:u.natural:min(u.natural+u.loc.RawLen()+repo.BlockSlack, int64(cap(buf)))]
	}
	st.reqs = append(st.reqs, q)
	st.reqUse = append(st.reqUse, k)
}

// assemble opens the prepared window's blocks into its buffer, pass by
// pass, and copies the pieces of those not decoded in place.
func (ww *windowWriter) assemble(ctx context.Context, st *windowState) error {
	buf := st.buf
	for _, pass := range [2][2]int{{0, st.pass1}, {st.pass1, len(st.reqs)}} {
		err := ww.br.OpenRange(ctx, &st.loaded, pass[0], pass[1], func(i int, data []byte) error {
			u := &st.uses[st.reqUse[i]]
			ww.w.fetched.Add(int64(len(data)))
			if u.direct {
				return nil
			}
			for j := u.head; j >= 0; j = st.pcs[j].next {
				pc := &st.pcs[j]
				copy(buf[pc.at:pc.at+pc.length], data[pc.blockOff:pc.blockOff+pc.length])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// startWrite waits for the write in flight and starts writing st's
// window.
func (ww *windowWriter) startWrite(st *windowState) error {
	if err := ww.wait(); err != nil {
		return err
	}
	win, buf, w := st.win, st.buf, ww.w
	done := make(chan error, 1)
	ww.pending = done
	go func() {
		for _, sg := range win.segs {
			if err := ww.writeSegment(&sg, buf[sg.bufOff:sg.bufOff+sg.size]); err != nil {
				done <- err
				return
			}
			w.done.Add(sg.size)
		}
		done <- nil
	}()
	return nil
}

// wait waits for the write in flight, if any.
func (ww *windowWriter) wait() error {
	if ww.pending == nil {
		return nil
	}
	err := <-ww.pending
	ww.pending = nil
	return err
}

// writeSegment writes one assembled segment, and finishes its file when
// it was the file's last.
func (ww *windowWriter) writeSegment(sg *segment, data []byte) error {
	w, f := ww.w, &ww.p.files[sg.file]
	hd, err := ww.h.acquire(sg.file)
	if err != nil {
		return err
	}
	direct := hd.direct && aligned(data, sg.off)
	if direct {
		err = pwriteAll(hd.f, data, sg.off)
		if errors.Is(err, unix.EINVAL) {
			// A file system that takes O_DIRECT at open but not this
			// write: the page cache then.
			direct, err = false, nil
		}
	}
	if !direct && err == nil {
		var fb *os.File
		if fb, err = ww.h.buffered(sg.file, hd); err == nil {
			err = pwriteAll(fb, data, sg.off)
		}
	}
	if err == nil && w.writeLimit != nil {
		err = w.writeLimit(len(data))
	}
	ww.h.release(sg.file)
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	w.written.Add(sg.size)
	// Every other segment of this file has released it before it counted
	// down, so at zero the file is complete.
	if ww.p.segsLeft[sg.file].Add(-1) == 0 {
		return w.finishFile(ww.h, f, sg.file)
	}
	return nil
}

// pwriteAll writes data at off.
func pwriteAll(f *os.File, data []byte, off int64) error {
	for len(data) > 0 {
		// One pwrite moves at most about 2 GB on Linux.
		n, err := f.WriteAt(data[:min(len(data), 1<<30)], off)
		if err != nil {
			return err
		}
		data, off = data[n:], off+int64(n)
	}
	return nil
}

// aligned says whether data can be written at off with O_DIRECT.
func aligned(data []byte, off int64) bool {
	return len(data) > 0 && len(data)%directAlign == 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(data)))%directAlign == 0
}

func alignUp(n int64) int64 { return (n + directAlign - 1) &^ (directAlign - 1) }

// alignedBuf returns a buffer of length n that starts on a directAlign
// boundary, with repo.BlockSlack more capacity, reusing b when it is
// large enough (b came from alignedBuf).
func alignedBuf(b []byte, n int) []byte {
	if cap(b) >= n+repo.BlockSlack {
		return b[:n]
	}
	raw := make([]byte, n+directAlign+repo.BlockSlack)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (directAlign - 1))
	return raw[skip : skip+n : skip+n+repo.BlockSlack]
}

// finishFile closes a complete file, starting the writeback of what went
// through the page cache so that the final sync has less to wait for,
// and gives it the backup's mode and modification time. Its bytes were
// counted as done segment by segment.
func (w *writer) finishFile(h *handles, f *repo.FileEntry, i int) error {
	if err := h.finish(i); err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	return w.fileDone(f, w.target(f.Path), false)
}

// handles keeps up to max restored files open, least recently used first
// to be closed; a file in use is never closed under its writer.
type handles struct {
	w       *writer
	files   []repo.FileEntry
	max     int
	mu      sync.Mutex
	open    map[int]*handle
	lru     list.List // of file index, most recently used at the front
	created []bool
	err     error // first error closing an evicted file
}

type handle struct {
	f      *os.File
	direct bool     // f was opened with O_DIRECT
	fb     *os.File // without O_DIRECT, for unaligned writes to a direct file
	users  int
	elem   *list.Element
}

// close closes the handle's files.
func (e *handle) close() error {
	err := e.f.Close()
	if e.fb != nil {
		if cerr := e.fb.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func newHandles(w *writer, files []repo.FileEntry, max int) *handles {
	return &handles{w: w, files: files, max: max, open: map[int]*handle{}, created: make([]bool, len(files))}
}

// create creates (or truncates) file i and leaves it open.
func (h *handles) create(i int) error {
	_, err := h.acquire(i)
	if err == nil {
		h.release(i)
	}
	return err
}

func (h *handles) acquire(i int) (*handle, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.open[i]; ok {
		e.users++
		h.lru.MoveToFront(e.elem)
		return e, nil
	}
	for el := h.lru.Back(); el != nil && len(h.open) >= h.max; {
		prev := el.Prev()
		j := el.Value.(int)
		if e := h.open[j]; e.users == 0 {
			h.lru.Remove(el)
			delete(h.open, j)
			if err := e.close(); err != nil && h.err == nil {
				h.err = fmt.Errorf("restore %s: %w", h.files[j].Path, err)
			}
		}
		el = prev
	}
	if h.err != nil {
		return nil, h.err
	}
	flags := os.O_WRONLY
	if !h.created[i] {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	path := h.w.target(h.files[i].Path)
	direct := h.files[i].Size >= directMinSize && h.files[i].Size%directAlign == 0
	var f *os.File
	var err error = unix.EINVAL
	if direct {
		f, err = os.OpenFile(path, flags|unix.O_DIRECT, 0o600)
	}
	if errors.Is(err, unix.EINVAL) {
		direct = false
		f, err = os.OpenFile(path, flags, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", h.files[i].Path, err)
	}
	h.created[i] = true
	e := &handle{f: f, direct: direct, users: 1, elem: h.lru.PushFront(i)}
	h.open[i] = e
	return e, nil
}

// buffered returns a descriptor of file i (acquired as e) that writes
// through the page cache.
func (h *handles) buffered(i int, e *handle) (*os.File, error) {
	if !e.direct {
		return e.f, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.fb == nil {
		fb, err := os.OpenFile(h.w.target(h.files[i].Path), os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", h.files[i].Path, err)
		}
		e.fb = fb
	}
	return e.fb, nil
}

func (h *handles) release(i int) {
	h.mu.Lock()
	h.open[i].users--
	h.mu.Unlock()
}

// finish closes file i, which nobody writes any more, after asking the
// kernel to start writing it back.
func (h *handles) finish(i int) error {
	h.mu.Lock()
	e, ok := h.open[i]
	if ok {
		h.lru.Remove(e.elem)
		delete(h.open, i)
	}
	h.mu.Unlock()
	if !ok {
		return nil
	}
	// Only a hint: the final sync makes the directory durable.
	if !e.direct {
		_ = unix.SyncFileRange(int(e.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	} else if e.fb != nil {
		_ = unix.SyncFileRange(int(e.fb.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	return e.close()
}

// closeAll closes what is still open (after an error) and returns the
// first error seen closing a file.
func (h *handles) closeAll() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for i, e := range h.open {
		if err := e.close(); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", h.files[i].Path, err))
		}
	}
	clear(h.open)
	h.lru.Init()
	if h.err != nil {
		errs = append([]error{h.err}, errs...)
		h.err = nil
	}
	return errors.Join(errs...)
}

// syncFilesystems flushes the file system of each directory to disk.
func syncFilesystems(dirs []string) error {
	for _, d := range dirs {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", d, err)
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", d, err)
		}
	}
	return nil
}
