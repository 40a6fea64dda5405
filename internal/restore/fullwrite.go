package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/pgguard/pgguard/internal/bigbuf"
	"github.com/pgguard/pgguard/internal/repo"
)

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
	mem    bigbuf.Buf // buf's memory, outside the heap (package bigbuf)
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
		// Nothing reads or writes the buffers any more: the window
		// being prepared was waited for before returning, the write in
		// flight just now.
		for k := range ww.st {
			ww.st[k].mem.Free()
			ww.st[k].loaded.Free()
		}
	}()
	for k := range ww.st {
		ww.st[k].loaded.OutsideHeap()
	}
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
	// Sized for the largest window at once, with the slack a block
	// decoded in place may overrun by; page-aligned, for O_DIRECT.
	buf, err := st.mem.Grow(int(p.largest) + repo.BlockSlack)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	buf = buf[:win.size]
	st.buf = buf
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
				loc, err := r.LocateBlock(ref.ID)
				if err != nil {
					return err
				}
				k = int32(len(st.uses))
				st.blocks[ref.ID] = k
				st.uses = append(st.uses, blockUse{id: ref.ID, loc: loc, seg: si, natural: at - ref.BlockOffset, head: pi, tail: pi})
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

// finishFile closes a complete file, starting the writeback of what went
// through the page cache so that the final sync has less to wait for,
// and gives it the backup's mode and modification time. Its bytes were
// counted as done segment by segment.
func (w *writer) finishFile(h *handles, f *repo.FileEntry, i int) error {
	open, err := h.finish(i, func(fh *os.File) error { return setMeta(f, fh) })
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	if !open {
		return w.fileDone(f, false)
	}
	w.report(f, false)
	return nil
}
