package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Backup collects the files of one backup. Files may be written from
// several goroutines at once (one FileWriter each); Finish writes the
// manifest once every block is in a saved, indexed pack.
type Backup struct {
	r    *Repository
	hdr  Header
	prev map[string]*FileEntry
	st   statCounters

	// savers bounds the blocks being hashed, compressed and sealed at once
	// across all the backup's files. Blocks are saved off the writer's
	// goroutine, so one large file (a 1 GiB relation segment) keeps every
	// core busy instead of one: files are read whole by one channel each,
	// and the largest often takes most of the backup's time. Nil when
	// Runtime.Parallel is 1: blocks are then saved on the writer's
	// goroutine, one at a time, and a Write returns once its blocks are in
	// packs.
	savers chan struct{}
	bufs   sync.Pool // *[]byte of BlockSize capacity: blocks being filled or saved

	mu    sync.Mutex
	files []FileEntry
	paths map[string]bool
	done  bool
}

// NewBackup starts a backup. hdr.ID is generated from hdr.StartTime when
// empty. prev, if not nil, is the manifest unchanged file parts are taken
// from (FileWriter.Skip).
func (r *Repository) NewBackup(hdr Header, prev *Manifest) (*Backup, error) {
	if hdr.ID == "" {
		if hdr.StartTime.IsZero() {
			hdr.StartTime = r.rt.Now()
		}
		hdr.ID = NewBackupID(hdr.StartTime)
	}
	if err := checkBackupID(hdr.ID); err != nil {
		return nil, err
	}
	switch hdr.Kind {
	case KindFull, KindIncr, KindLogical:
	default:
		return nil, fmt.Errorf("backup kind %q unknown (want full, incr or logical)", hdr.Kind)
	}
	b := &Backup{r: r, hdr: hdr, paths: map[string]bool{}, prev: map[string]*FileEntry{}}
	if r.rt.Parallel > 1 {
		// One more than Parallel, so a saver that uploads a full pack does
		// not leave a core idle meanwhile.
		b.savers = make(chan struct{}, r.rt.Parallel+1)
	}
	if prev != nil {
		for i := range prev.Files {
			b.prev[prev.Files[i].Path] = &prev.Files[i]
		}
	}
	return b, nil
}

// ID is the backup id.
func (b *Backup) ID() string { return b.hdr.ID }

// Header returns the header given to NewBackup, with the id filled in; set
// the stop fields on it and pass it to Finish.
func (b *Backup) Header() Header { return b.hdr }

// Stats reports bytes read in, bytes newly stored and blocks deduplicated.
func (b *Backup) Stats() Stats { return b.st.snapshot() }

// FileMeta describes a file being written.
type FileMeta struct {
	Path  string
	Mode  uint32
	MTime time.Time
}

// CreateFile starts a file. Write its content in order with Write, and
// Skip ranges unchanged since the previous manifest; then Close.
func (b *Backup) CreateFile(ctx context.Context, meta FileMeta) (*FileWriter, error) {
	if meta.Path == "" {
		return nil, errors.New("create file: empty path")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return nil, fmt.Errorf("create file %s: backup %s already finished", meta.Path, b.hdr.ID)
	}
	if b.paths[meta.Path] {
		return nil, fmt.Errorf("create file %s: already in backup %s", meta.Path, b.hdr.ID)
	}
	b.paths[meta.Path] = true
	return &FileWriter{b: b, ctx: ctx, meta: meta, prev: b.prev[meta.Path], buf: b.getBuf()}, nil
}

func (b *Backup) getBuf() *[]byte {
	if p, ok := b.bufs.Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	buf := make([]byte, 0, b.r.cfg.BlockSize)
	return &buf
}

// FileWriter writes one file as blocks of the repository block size,
// counted from the start of the file or from the end of the last Skip.
// Full blocks are saved in the background (see Backup.savers); an error
// from saving one is returned by a later Write, Skip or Close.
type FileWriter struct {
	b    *Backup
	ctx  context.Context // the writer implements io.Writer, which has no ctx
	meta FileMeta
	prev *FileEntry
	buf  *[]byte // block being filled; nil once closed
	pos  int64   // file offset of buf[0]
	err  error   // sticky; only the writer's goroutine touches it

	saving sync.WaitGroup
	mu     sync.Mutex // guards refs and saveErr against the savers
	refs   []BlockRef // a saver fills in its block's ID
	// saveErr is the first error of a background save.
	saveErr error
}

// Write appends p to the file. It implements io.Writer.
func (w *FileWriter) Write(p []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		buf := *w.buf
		k := min(len(p), cap(buf)-len(buf))
		*w.buf = append(buf, p[:k]...)
		p, n = p[k:], n+k
		if len(*w.buf) == cap(*w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// failed returns the writer's error or the first error of a background
// save, which then sticks.
func (w *FileWriter) failed() error {
	if w.err != nil {
		return w.err
	}
	w.mu.Lock()
	w.err = w.saveErr
	w.mu.Unlock()
	return w.err
}

// flush hands the block being filled to a saver and starts a new one.
func (w *FileWriter) flush() error {
	if err := w.failed(); err != nil {
		return err // also after Close, which leaves no buffer
	}
	if len(*w.buf) == 0 {
		return nil
	}
	b := w.b
	if b.savers == nil {
		id, err := b.r.saveBlock(w.ctx, *w.buf, &b.st)
		if err != nil {
			w.err = fmt.Errorf("write %s at %d: %w", w.meta.Path, w.pos, err)
			return w.err
		}
		w.refs = append(w.refs, BlockRef{ID: id, Offset: w.pos, Length: int64(len(*w.buf))})
		w.pos += int64(len(*w.buf))
		*w.buf = (*w.buf)[:0]
		return nil
	}
	select {
	case b.savers <- struct{}{}:
	case <-w.ctx.Done():
		w.err = fmt.Errorf("write %s at %d: %w", w.meta.Path, w.pos, w.ctx.Err())
		return w.err
	}
	buf, pos := w.buf, w.pos
	w.buf = b.getBuf()
	w.pos += int64(len(*buf))
	w.mu.Lock()
	i := len(w.refs)
	w.refs = append(w.refs, BlockRef{Offset: pos, Length: int64(len(*buf))})
	w.mu.Unlock()
	w.saving.Add(1)
	go func() {
		defer w.saving.Done()
		id, err := b.r.saveBlock(w.ctx, *buf, &b.st)
		<-b.savers
		b.bufs.Put(buf)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.saveErr == nil {
				w.saveErr = fmt.Errorf("write %s at %d: %w", w.meta.Path, pos, err)
			}
			return
		}
		w.refs[i].ID = id
	}()
	return nil
}

// wait waits for the writer's background saves and returns the first error.
func (w *FileWriter) wait() error {
	w.saving.Wait()
	return w.failed()
}

// Skip records that the next n bytes are unchanged since the previous
// manifest given to NewBackup: their blocks are taken from it, and nothing
// is read or stored.
func (w *FileWriter) Skip(n int64) error {
	if err := w.flush(); err != nil {
		return err
	}
	if n <= 0 {
		return nil
	}
	if w.prev == nil {
		w.err = fmt.Errorf("skip in %s: the previous backup has no such file; write the data instead", w.meta.Path)
		return w.err
	}
	start, end := w.pos, w.pos+n
	if end > w.prev.Size {
		w.err = fmt.Errorf("skip %d bytes at %d in %s: the previous backup has only %d bytes", n, start, w.meta.Path, w.prev.Size)
		return w.err
	}
	// First previous block that ends after start.
	i, _ := slices.BinarySearchFunc(w.prev.Blocks, start, func(r BlockRef, off int64) int {
		if r.Offset+r.Length <= off {
			return -1
		}
		return 1
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	for ; i < len(w.prev.Blocks) && w.prev.Blocks[i].Offset < end; i++ {
		r := w.prev.Blocks[i]
		lo, hi := max(r.Offset, start), min(r.Offset+r.Length, end)
		w.refs = append(w.refs, BlockRef{ID: r.ID, Offset: lo, Length: hi - lo, BlockOffset: r.BlockOffset + lo - r.Offset})
		w.b.st.blocksDedup.Add(1)
		w.b.st.bytesDedup.Add(hi - lo)
	}
	w.pos = end
	return nil
}

// Close waits until every block of the file is saved (in a pack, maybe not
// yet uploaded: Finish flushes) and adds the file to the backup. Its size
// is the number of bytes written and skipped.
func (w *FileWriter) Close() error {
	if w.buf == nil {
		return w.err
	}
	err := w.flush()
	if werr := w.wait(); err == nil {
		err = werr
	}
	w.b.bufs.Put(w.buf)
	w.buf = nil
	if err != nil {
		return err
	}
	w.err = errors.New("file writer closed")
	e := FileEntry{Path: w.meta.Path, Mode: w.meta.Mode, Size: w.pos, MTime: w.meta.MTime,
		Checksum: blocksChecksum(w.refs), Blocks: w.refs}
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	if w.b.done {
		return fmt.Errorf("close %s: backup %s already finished", w.meta.Path, w.b.hdr.ID)
	}
	w.b.files = append(w.b.files, e)
	return nil
}

// Finish flushes packs, writes the index and then the manifest, in that
// order. hdr replaces the header given to NewBackup (to set stop time and
// LSN); its ID and Kind must not change. Files not closed are not included.
func (b *Backup) Finish(ctx context.Context, hdr Header) (*Manifest, error) {
	if hdr.ID == "" {
		hdr.ID = b.hdr.ID
	}
	if hdr.ID != b.hdr.ID || hdr.Kind != b.hdr.Kind {
		return nil, fmt.Errorf("finish backup %s: id or kind changed to %s/%s", b.hdr.ID, hdr.ID, hdr.Kind)
	}
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return nil, fmt.Errorf("finish backup %s: already finished", b.hdr.ID)
	}
	b.done = true
	files := slices.Clone(b.files)
	b.mu.Unlock()
	if err := b.r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("finish backup %s: %w", b.hdr.ID, err)
	}
	slices.SortFunc(files, func(x, y FileEntry) int {
		if x.Path < y.Path {
			return -1
		}
		if x.Path > y.Path {
			return 1
		}
		return 0
	})
	m := &Manifest{Header: hdr, Files: files}
	if err := b.r.saveManifest(ctx, m); err != nil {
		return nil, fmt.Errorf("finish backup %s: %w", b.hdr.ID, err)
	}
	return m, nil
}
