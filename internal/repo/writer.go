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
	return &FileWriter{b: b, ctx: ctx, meta: meta, prev: b.prev[meta.Path],
		buf: make([]byte, 0, b.r.cfg.BlockSize)}, nil
}

// FileWriter writes one file as blocks of the repository block size,
// counted from the start of the file or from the end of the last Skip.
type FileWriter struct {
	b    *Backup
	ctx  context.Context // the writer implements io.Writer, which has no ctx
	meta FileMeta
	prev *FileEntry
	buf  []byte
	pos  int64 // file offset of buf[0]
	refs []BlockRef
	err  error
}

// Write appends p to the file. It implements io.Writer.
func (w *FileWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *FileWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	id, err := w.b.r.saveBlock(w.ctx, w.buf, &w.b.st)
	if err != nil {
		w.err = fmt.Errorf("write %s at %d: %w", w.meta.Path, w.pos, err)
		return w.err
	}
	w.refs = append(w.refs, BlockRef{ID: id, Offset: w.pos, Length: int64(len(w.buf))})
	w.pos += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// Skip records that the next n bytes are unchanged since the previous
// manifest given to NewBackup: their blocks are taken from it, and nothing
// is read or stored.
func (w *FileWriter) Skip(n int64) error {
	if w.err != nil {
		return w.err
	}
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

// Close adds the file to the backup. Its size is the number of bytes
// written and skipped.
func (w *FileWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.flush(); err != nil {
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
