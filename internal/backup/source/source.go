// Package source reads a consistent online physical backup out of a running
// PostgreSQL whose data directory is on this host: it starts and stops a
// non-exclusive backup over one SQL session, walks PGDATA with
// pg_basebackup's exclusion rules, and reads files in page-aligned chunks
// with N parallel readers, validating page checksums and, for incremental
// backups, reading only what changed since a previous backup (by WAL block
// references from pg_waldump, or by page LSN).
//
// It owns the PostgreSQL side only. It never writes into the data
// directory, never stores anything (chunks go to a Sink the caller
// provides, in front of the repository), never copies pg_wal (WAL comes from
// the archive), and never takes backup_label or tablespace_map from disk:
// they come from Backup.Stop.
package source

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Sink receives a backup's files. StartFile is called once for every entry.
// Directories and symlinks come first, one at a time in path order (so a
// tablespace link exists before anything under it); then regular files,
// concurrently from up to Options.Channels goroutines, each FileWriter used
// by one goroutine.
type Sink interface {
	StartFile(ctx context.Context, e Entry, p Plan) (FileWriter, error)
}

// FileWriter receives one file's chunks in ascending offsets, then Finish.
// For ActionNone and ActionFromPrevious there are no chunks. For
// ActionScan and ActionReadBlocks the chunks are the changed pages only; the
// rest of the file is the previous backup's, cut to FileResult.Size. When
// reading fails, Finish is not called and Read returns the error.
type FileWriter interface {
	WriteChunk(c Chunk) error
	Finish(r FileResult) error
}

// Options configures Read.
type Options struct {
	DataDir         string
	Channels        int // parallel readers, 1–255
	ChunkSize       int // multiple of PageSize; default 1 MiB
	VerifyChecksums bool
	StartLSN        lsn.LSN
	Timeline        uint32
	// Previous makes the read incremental; nil reads everything.
	Previous *Previous
	// WALDir holds the WAL segments from Previous.StartLSN to StartLSN
	// (default DataDir/pg_wal); Waldump is the pg_waldump binary (default:
	// next to the running postgres). Without that WAL, relation files are
	// scanned by page LSN and Stats.WALMapFallback says why.
	WALDir  string
	Waldump string
	// ReadLimit, when set, is called with the bytes of every read of the
	// data directory and waits to keep to a read rate (BK-10).
	ReadLimit func(ctx context.Context, n int) error
}

// Options returns the Options for reading this backup's files.
func (b *Backup) Options(channels int) Options {
	return Options{DataDir: b.DataDir, Channels: channels, VerifyChecksums: b.DataChecksums, StartLSN: b.StartLSN, Timeline: b.Timeline}
}

// Validate reports a configuration error a person can fix.
func (o Options) Validate() error {
	switch {
	case o.DataDir == "":
		return errors.New("no data directory given")
	case o.Channels < 1 || o.Channels > 255:
		return fmt.Errorf("channels %d out of range: use 1 to 255", o.Channels)
	case o.ChunkSize < 0 || o.ChunkSize%PageSize != 0:
		return fmt.Errorf("chunk size %d is not a multiple of %d", o.ChunkSize, PageSize)
	}
	return nil
}

// Stats counts what a Read did.
type Stats struct {
	Files             int64 // entries passed to the sink
	FilesRead         int64 // opened and read (wholly or partly)
	FilesFromPrevious int64
	BytesTotal        int64 // sum of regular file sizes at walk time
	BytesRead         int64 // read from disk
	BytesSent         int64 // passed to the sink as chunks
	BytesSkipped      int64 // BytesTotal - BytesRead: never read
	PagesChecked      int64
	BadPages          []BadPage
	// WALMapUsed is true when an incremental read used WAL block references;
	// WALMapFallback says why it did not (empty for full reads).
	WALMapUsed     bool
	WALMapBlocks   int
	WALMapFallback string
}

// Read walks opts.DataDir and passes every entry, read according to its
// Plan, to sink, with opts.Channels readers in parallel. Bad pages do not
// fail the read: they are reported in Stats.BadPages.
func Read(ctx context.Context, opts Options, sink Sink) (Stats, error) {
	var st Stats
	if err := opts.Validate(); err != nil {
		return st, err
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = 1 << 20
	}
	tree, err := OpenTree(opts.DataDir)
	if err != nil {
		return st, err
	}
	defer tree.Close()
	entries, err := tree.Walk(ctx)
	if err != nil {
		return st, err
	}
	var changed *BlockMap
	if opts.Previous != nil {
		changed, st.WALMapFallback = blockMapFor(ctx, opts, tree.ToolCredential())
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if changed != nil {
			st.WALMapUsed, st.WALMapBlocks = true, changed.Len()
		}
	}
	type job struct {
		e Entry
		p Plan
	}
	jobs := make([]job, len(entries))
	for i, e := range entries {
		jobs[i] = job{e, Decide(e, opts.Previous, changed)}
		if e.IsRegular() {
			st.BytesTotal += e.Size
		}
	}
	// Directories and links first, in path order; then the largest reads
	// first, so that one big file does not finish last alone.
	sort.SliceStable(jobs, func(i, j int) bool {
		ri, rj := jobs[i].e.IsRegular(), jobs[j].e.IsRegular()
		if ri != rj {
			return rj
		}
		return ri && jobs[i].e.Size > jobs[j].e.Size
	})

	reader := FileReader{Tree: tree, ChunkSize: opts.ChunkSize, VerifyChecksums: opts.VerifyChecksums, StartLSN: opts.StartLSN, ReadLimit: opts.ReadLimit}
	var metaOnly int
	for ; metaOnly < len(jobs) && !jobs[metaOnly].e.IsRegular(); metaOnly++ {
		if _, err := readOne(ctx, reader, sink, jobs[metaOnly].e, jobs[metaOnly].p); err != nil {
			return st, err
		}
		st.Files++
	}
	// The first failure stops the read: nothing new starts, and the reads
	// in flight see their context cancelled.
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.Channels, 1))
	for _, j := range jobs[metaOnly:] {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // stopping: Wait or ctx has the error
			}
			res, err := readOne(gctx, reader, sink, j.e, j.p)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			st.Files++
			switch j.p.Action {
			case ActionFromPrevious:
				st.FilesFromPrevious++
			case ActionReadAll, ActionScan, ActionReadBlocks:
				st.FilesRead++
			}
			st.BytesRead += res.BytesRead
			st.BytesSent += res.BytesSent
			st.PagesChecked += res.PagesChecked
			st.BadPages = append(st.BadPages, res.BadPages...)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, err
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.BytesSkipped = max(st.BytesTotal-st.BytesRead, 0)
	sort.Slice(st.BadPages, func(i, j int) bool {
		a, b := st.BadPages[i], st.BadPages[j]
		return a.Path < b.Path || a.Path == b.Path && a.Block < b.Block
	})
	return st, nil
}

func readOne(ctx context.Context, r FileReader, sink Sink, e Entry, p Plan) (FileResult, error) {
	w, err := sink.StartFile(ctx, e, p)
	if err != nil {
		return FileResult{}, fmt.Errorf("store %s: %w", e.Path, err)
	}
	res, err := r.Read(ctx, e, p, func(c Chunk) error {
		if err := w.WriteChunk(c); err != nil {
			return fmt.Errorf("store %s at %d: %w", e.Path, c.Offset, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := w.Finish(res); err != nil {
		return res, fmt.Errorf("store %s: %w", e.Path, err)
	}
	return res, nil
}

// blockMapFor builds the WAL block map for an incremental read, or returns
// nil and the reason it could not.
func blockMapFor(ctx context.Context, opts Options, runAs *syscall.Credential) (*BlockMap, string) {
	prev := opts.Previous
	if prev.Timeline != 0 && opts.Timeline != 0 && prev.Timeline != opts.Timeline {
		return nil, fmt.Sprintf("timeline changed from %d to %d since the previous backup: page LSN scan", prev.Timeline, opts.Timeline)
	}
	if prev.StartLSN > opts.StartLSN {
		return nil, fmt.Sprintf("previous backup start %s is after this start %s: page LSN scan", prev.StartLSN, opts.StartLSN)
	}
	waldump := opts.Waldump
	if waldump == "" {
		var err error
		if waldump, err = WaldumpPath(opts.DataDir); err != nil {
			return nil, err.Error() + ": page LSN scan"
		}
	}
	walDir := opts.WALDir
	if walDir == "" {
		walDir = filepath.Join(opts.DataDir, "pg_wal")
	}
	tli := opts.Timeline
	if tli == 0 {
		tli = 1
	}
	m, err := BuildBlockMap(ctx, waldump, walDir, tli, prev.StartLSN, opts.StartLSN, runAs)
	if err != nil {
		return nil, err.Error() + ": page LSN scan"
	}
	return m, ""
}
