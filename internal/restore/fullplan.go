package restore

import (
	"fmt"
	"slices"
	"sync/atomic"

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

// windowBytes is the content a window aims at. Each channel holds two
// windows (one decoded while the other is written), and the stored bytes
// of the next one's blocks; larger windows mean fewer ranged reads (a
// request each on S3) and larger writes.
var windowBytes int64 = 8 << 20

// windowMemory bounds the window buffers of all channels together (a
// window takes up to 1.5 windowBytes: see planFull), so that a restore
// on many channels takes no more memory than one on two (issue 16); a
// window is not made smaller than minWindow for it. The buffers, and the
// stored bytes loaded for them, live outside the Go heap (package
// bigbuf): in the heap they put the live heap at the goal the command's
// 32 MiB soft memory limit leaves, and the collector ran back to back,
// about 1,000 times in a restore of 2.7 GiB on four channels, for half
// of its user time.
const (
	windowMemory = 10 << 20
	minWindow    = 1 << 20
)

// windowFor is the window size for a restore on channels.
func windowFor(channels int) int64 {
	win := windowBytes
	if per := windowMemory * 2 / 3 / int64(2*max(channels, 1)); per < win {
		win = max(per, min(minWindow, win))
	}
	return win
}

// fullPlan says which windows restore a set of files. Where each block
// is, is looked up again as a window is prepared, not kept: a backup's
// blocks are a few hundred thousand after a chain of incrementals, and a
// map of their places took more memory than the rest of the restore.
type fullPlan struct {
	files    []repo.FileEntry
	windows  []window
	largest  int64          // bytes of the largest window
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
	windowBytes := windowBytes
	if w.window > 0 {
		windowBytes = w.window
	}
	p := &fullPlan{files: files, segsLeft: make([]atomic.Int32, len(files))}
	order := make([]int, 0, len(files))
	firsts := make([]repo.BlockLoc, len(files))
	var (
		lastID  repo.BlockID
		lastLoc repo.BlockLoc
	)
	for i := range files {
		f := &files[i]
		var size int64
		for j, ref := range f.Blocks {
			// Consecutive pieces of one block (an incremental's pages
			// around a changed one) are looked up once.
			if j == 0 || ref.ID != lastID {
				loc, err := w.r.LocateBlock(ref.ID)
				if err != nil {
					return nil, fmt.Errorf("backup %s: %w", w.m.ID, err)
				}
				lastID, lastLoc = ref.ID, loc
			}
			if j == 0 {
				firsts[i] = lastLoc
			}
			if ref.Length < 0 || ref.BlockOffset < 0 || ref.BlockOffset+ref.Length > lastLoc.RawLen() {
				return nil, fmt.Errorf("restore %s: block %s has %d bytes, manifest wants %d at %d: run pgguard verify --backup %s", f.Path, ref.ID.Short(), lastLoc.RawLen(), ref.Length, ref.BlockOffset, w.m.ID)
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
	slices.SortStableFunc(order, func(a, b int) int { return firsts[a].Compare(firsts[b]) })
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
	for _, win := range p.windows {
		p.largest = max(p.largest, win.size)
	}
	return p, nil
}
