package backup

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/backup/source"
	"github.com/pgguard/pgguard/internal/repo"
)

// sink turns source entries into repository files. For a file read
// incrementally the stored file is the previous version with the passed
// pages laid over it: gaps between chunks are Skip'ed (taken from the
// previous manifest), never read.
type sink struct {
	b   *repo.Backup
	rep progress.Reporter
}

func newSink(b *repo.Backup, rep progress.Reporter) *sink { return &sink{b: b, rep: rep} }

type fileWriter struct {
	s    *sink
	e    source.Entry
	p    source.Plan
	w    *repo.FileWriter
	pos  int64
	prev int64 // size of the file in the previous backup; -1 if none
}

func (s *sink) StartFile(ctx context.Context, e source.Entry, p source.Plan) (source.FileWriter, error) {
	w, err := s.b.CreateFile(ctx, repo.FileMeta{Path: e.Path, Mode: uint32(e.Mode), MTime: e.ModTime})
	if err != nil {
		return nil, err
	}
	fw := &fileWriter{s: s, e: e, p: p, w: w, prev: -1}
	switch {
	case e.Mode&fs.ModeSymlink != 0:
		if _, err := w.Write([]byte(e.LinkTarget)); err != nil {
			return nil, err
		}
	case p.Action == source.ActionFromPrevious || p.Action == source.ActionScan || p.Action == source.ActionReadBlocks:
		fw.prev = p.PrevSize
		if p.Action == source.ActionFromPrevious {
			fw.prev = e.Size
		}
	}
	return fw, nil
}

func (f *fileWriter) WriteChunk(c source.Chunk) error {
	if c.Offset < f.pos {
		return fmt.Errorf("chunk at %d overlaps data up to %d", c.Offset, f.pos)
	}
	if c.Offset > f.pos {
		if err := f.skipTo(c.Offset); err != nil {
			return err
		}
	}
	if _, err := f.w.Write(c.Data); err != nil {
		return err
	}
	f.pos += int64(len(c.Data))
	f.s.rep.Add(int64(len(c.Data)))
	return nil
}

// skipTo takes [pos, off) from the previous backup.
func (f *fileWriter) skipTo(off int64) error {
	if f.prev < off {
		return fmt.Errorf("no data for bytes %d to %d: not read and not in the previous backup (%s)", f.pos, off, f.p.Reason)
	}
	if err := f.w.Skip(off - f.pos); err != nil {
		return err
	}
	f.s.rep.Add(off - f.pos)
	f.pos = off
	return nil
}

func (f *fileWriter) Finish(r source.FileResult) error {
	if f.e.IsRegular() {
		if r.Size < f.pos {
			return fmt.Errorf("read %d bytes but the file is %d bytes", f.pos, r.Size)
		}
		if r.Size > f.pos {
			if err := f.skipTo(r.Size); err != nil {
				return err
			}
		}
	}
	return f.w.Close()
}
