package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync/atomic"

	"github.com/pierrec/lz4/v4"
	"golang.org/x/sync/errgroup"

	"github.com/pgguard/pgguard/internal/bigbuf"
)

// A restore reads most blocks of a backup. Fetching them one ranged Load
// at a time costs a request (an open, or an S3 GET) per block, and a file
// of an incremental backup refers to pieces of older blocks around each
// changed page, so the same block would be fetched, decrypted,
// decompressed and hashed once per piece. BlockFetch instead reads each
// pack in runs of adjacent blobs and opens every block exactly once.
const (
	// fetchRunBytes caps one ranged read (stored bytes), so that workers
	// share the packs of a small repository and memory stays bounded.
	fetchRunBytes = 4 << 20
	// fetchRunRaw caps the plaintext of one run, for the same balance on
	// data that compresses well (pgbench pages compress 20:1).
	fetchRunRaw = 64 << 20
	// fetchGap is the largest hole between two wanted blobs that is read
	// through rather than split into two reads.
	fetchGap = 256 << 10
)

// BlockFetch is a plan to load a set of blocks, each once, grouped by pack.
// Make it with NewBlockFetch (which checks that every block is indexed, so
// a caller can refuse to start before it changes anything) and run it with
// Run.
type BlockFetch struct {
	r     *Repository
	runs  []fetchRun
	raw   int64
	count int
}

type fetchRun struct {
	pack    packID
	offset  int64 // of the first blob in the pack
	length  int64 // through the end of the last blob
	entries []fetchEntry
}

// fetchEntry is a wanted block and where the index places it. The id is
// the one asked for, not the entry's: opening checks the entry against it.
type fetchEntry struct {
	id BlockID
	e  packEntry
}

// NewBlockFetch plans to load ids (duplicates are loaded once). A block no
// index knows is ErrBlockMissing.
func (r *Repository) NewBlockFetch(ids []BlockID) (*BlockFetch, error) {
	x := r.idx.Load()
	byPack := map[packID][]fetchEntry{}
	seen := make(map[BlockID]struct{}, len(ids))
	f := &BlockFetch{r: r}
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		pack, e, ok := x.lookup(id)
		if !ok {
			return nil, fmt.Errorf("block %s: %w (run rebuild-index, or the backup is damaged)", id.Short(), ErrBlockMissing)
		}
		byPack[pack] = append(byPack[pack], fetchEntry{id: id, e: e})
		f.raw += int64(e.RawLen)
		f.count++
	}
	packs := make([]packID, 0, len(byPack))
	for p := range byPack {
		packs = append(packs, p)
	}
	slices.SortFunc(packs, func(a, b packID) int { return slices.Compare(a[:], b[:]) })
	for _, p := range packs {
		entries := byPack[p]
		slices.SortFunc(entries, func(a, b fetchEntry) int { return cmp.Compare(a.e.Offset, b.e.Offset) })
		var run *fetchRun
		var runRaw int64
		for _, fe := range entries {
			e := fe.e
			off, end := int64(e.Offset), int64(e.Offset)+int64(e.Length)
			if run == nil || off-(run.offset+run.length) > fetchGap ||
				end-run.offset > fetchRunBytes || runRaw+int64(e.RawLen) > fetchRunRaw {
				f.runs = append(f.runs, fetchRun{pack: p, offset: off})
				run, runRaw = &f.runs[len(f.runs)-1], 0
			}
			run.length = end - run.offset
			run.entries = append(run.entries, fe)
			runRaw += int64(e.RawLen)
		}
	}
	return f, nil
}

// Blocks is the number of distinct blocks the fetch loads.
func (f *BlockFetch) Blocks() int { return f.count }

// Loads is the number of ranged reads the fetch makes.
func (f *BlockFetch) Loads() int { return len(f.runs) }

// Run loads every planned block on up to parallel goroutines and calls fn
// with its id and checked plaintext (authenticated, decompressed, and
// hashed against its id, as LoadBlock does). fn is called concurrently
// from several goroutines; data is only valid during the call and must
// not be modified. Run returns the first error, from storage, a damaged
// block or fn, after it has stopped every goroutine.
func (f *BlockFetch) Run(ctx context.Context, parallel int, fn func(id BlockID, data []byte) error) error {
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(max(parallel, 1), max(len(f.runs), 1)) {
		g.Go(func() error {
			var b fetchBuffers
			for {
				i := int(next.Add(1) - 1)
				if i >= len(f.runs) || gctx.Err() != nil {
					return nil
				}
				if err := f.r.fetchRun(gctx, &f.runs[i], &b, fn); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// fetchBuffers are one goroutine's buffers, reused from run to run and
// block to block.
type fetchBuffers struct {
	stored, opened, plain []byte
}

func (r *Repository) fetchRun(ctx context.Context, run *fetchRun, b *fetchBuffers, fn func(BlockID, []byte) error) error {
	name := run.pack.name()
	b.stored = grow(b.stored, int(run.length))
	rc, err := r.be.Load(ctx, name, run.offset, run.length)
	if err != nil {
		return fmt.Errorf("load %s: %w", name, err)
	}
	_, err = io.ReadFull(rc, b.stored)
	rc.Close()
	if err != nil {
		return fmt.Errorf("read %s at %d+%d: %w", name, run.offset, run.length, err)
	}
	for _, fe := range run.entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := int64(fe.e.Offset) - run.offset
		blob := b.stored[start : start+int64(fe.e.Length)]
		data, err := r.openBlockInto(fe.id, run.pack, fe.e, blob, b)
		if err != nil {
			return err
		}
		if err := fn(fe.id, data); err != nil {
			return err
		}
	}
	return nil
}

// openBlockInto is openBlock with the caller's buffers: a restore opens
// every block of a backup, and fresh buffers per block cost as much
// zeroing and garbage collection as the decompression itself.
func (r *Repository) openBlockInto(id BlockID, pack packID, e packEntry, blob []byte, b *fetchBuffers) ([]byte, error) {
	return r.openBlockTo(id, pack, e, blob, b, nil)
}

// openBlockTo opens a block into dst when dst can hold its plaintext
// (cap(dst) >= RawLen: the result is dst[:RawLen], decrypted or
// decompressed in place, with no copy), else into b's buffers.
func (r *Repository) openBlockTo(id BlockID, pack packID, e packEntry, blob []byte, b *fetchBuffers, dst []byte) ([]byte, error) {
	raw := int(e.RawLen)
	inPlace := cap(dst) >= raw && raw > 0
	var (
		data []byte
		err  error
	)
	switch e.Comp {
	case compNone:
		if inPlace {
			data, err = r.keys.sealer.open(dst[:0], blob, id[:])
		} else {
			b.opened, err = r.keys.sealer.open(b.opened[:0], blob, id[:])
			data = b.opened
		}
		if err != nil {
			return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, err)
		}
	default:
		b.opened, err = r.keys.sealer.open(b.opened[:0], blob, id[:])
		if err != nil {
			return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, err)
		}
		var (
			out   []byte
			saved [BlockSlack]byte
			keep  int
		)
		if inPlace {
			out = dst[:0:raw]
			if cap(dst) >= raw+BlockSlack {
				out = dst[: 0 : raw+BlockSlack]
				keep = copy(saved[:], dst[raw:raw+BlockSlack])
			}
		} else {
			if cap(b.plain) < raw+BlockSlack {
				b.plain = make([]byte, 0, raw+BlockSlack)
			}
			out = b.plain[:0]
		}
		switch e.Comp {
		case compZstd:
			data, err = r.comp.dec.DecodeAll(b.opened, out)
			if err != nil {
				err = fmt.Errorf("zstd: %w", err)
			}
		case compLZ4:
			var n int
			n, err = lz4.UncompressBlock(b.opened, out[:cap(out)])
			if err != nil {
				err = fmt.Errorf("lz4: %w", err)
			}
			data = out[:n]
		default:
			err = fmt.Errorf("unknown compression code %d", e.Comp)
		}
		if keep > 0 {
			// zstd's fast copies may have written past the end.
			copy(dst[raw:raw+keep], saved[:keep])
		}
		if !inPlace && err == nil {
			b.plain = data
		}
	}
	if err == nil && len(data) != raw {
		err = fmt.Errorf("decompressed to %d bytes, the index says %d", len(data), e.RawLen)
	}
	if err != nil {
		return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, err)
	}
	if inPlace && raw > 0 && &data[0] != &dst[:1][0] {
		// A decoder that did not write in place (it never should with
		// the capacity given): the caller still gets dst.
		data = dst[:copy(dst[:raw], data)]
	}
	// The plaintext's CRC-32C when the entry has one (cheap; the blob is
	// already authenticated under its id by the cipher), else the keyed
	// block id itself. `verify` always checks the id.
	if e.HasSum {
		if crc32.Checksum(data, castagnoli) != e.Sum {
			return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, errors.New("content does not match its checksum"))
		}
	} else if r.keys.blockID(data) != id {
		return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, errors.New("content does not match its id"))
	}
	return data, nil
}

// BlockLoc is where the index places a block (see LocateBlock).
type BlockLoc struct {
	pack packID
	e    packEntry
}

// RawLen is the length of the block's plaintext.
func (l BlockLoc) RawLen() int64 { return int64(l.e.RawLen) }

// Compare orders locations as blocks are stored: by pack, then by offset.
func (l BlockLoc) Compare(o BlockLoc) int {
	if c := slices.Compare(l.pack[:], o.pack[:]); c != 0 {
		return c
	}
	return cmp.Compare(l.e.Offset, o.e.Offset)
}

// LocateBlock returns where the index places id; a block no index knows
// is ErrBlockMissing.
func (r *Repository) LocateBlock(id BlockID) (BlockLoc, error) {
	pack, e, ok := r.idx.Load().lookup(id)
	if !ok {
		return BlockLoc{}, fmt.Errorf("block %s: %w (run rebuild-index, or the backup is damaged)", id.Short(), ErrBlockMissing)
	}
	return BlockLoc{pack: pack, e: e}, nil
}

// BlockSlack is the room after a block's plaintext, in BlockRequest.Dst's
// capacity, that lets the zstd decoder use its fast copies (which may
// write a few bytes past the end of their output); what those bytes held
// is put back.
const BlockSlack = 64

// BlockRequest asks BlockReader.Read for one located block.
type BlockRequest struct {
	ID  BlockID
	Loc BlockLoc
	// Dst, when its capacity is at least the block's plaintext length,
	// receives the plaintext in place: data is then Dst[:RawLen], and
	// the block is decrypted or decompressed straight into it, without
	// a copy (faster with BlockSlack more capacity; the bytes there are
	// left as they were). With a smaller Dst, data is in the reader's own
	// buffer.
	Dst []byte
}

// BlockReader loads batches of located blocks with as few ranged reads as
// their places in the packs allow, reusing its buffers from batch to
// batch. It is for one goroutine at a time.
type BlockReader struct {
	r      *Repository
	b      fetchBuffers
	loaded LoadedBlocks
}

// NewBlockReader returns a reader of blocks of r.
func (r *Repository) NewBlockReader() *BlockReader { return &BlockReader{r: r} }

// Read loads reqs, pack by pack in runs of adjacent blobs (as BlockFetch
// does), and calls fn for each with its checked plaintext (authenticated,
// decompressed, and hashed against its id), in the order the blocks are
// stored. Unless it was opened into reqs[i].Dst, data is only valid
// during the call. Read returns the first error, from storage, a damaged
// block or fn.
func (br *BlockReader) Read(ctx context.Context, reqs []BlockRequest, fn func(i int, data []byte) error) error {
	if err := br.r.LoadBlocks(ctx, reqs, &br.loaded); err != nil {
		return err
	}
	return br.Open(ctx, &br.loaded, fn)
}

// LoadedBlocks are the stored (sealed) blobs of a batch of requests, read
// by LoadBlocks and not yet opened: loading one batch while another is
// opened keeps the storage and the CPU busy at once.
type LoadedBlocks struct {
	reqs   []BlockRequest
	order  []int // of reqs, in storage order
	runs   []loadedRun
	stored []byte
	mapped *bigbuf.Buf // stored's memory, when kept outside the heap
}

// OutsideHeap makes lb keep the stored blobs outside the Go heap from
// its next load on (package bigbuf says why), until Free.
func (lb *LoadedBlocks) OutsideHeap() {
	if lb.mapped == nil {
		lb.mapped = &bigbuf.Buf{}
	}
}

// Free releases what lb holds outside the heap; what it loaded is gone.
func (lb *LoadedBlocks) Free() {
	if lb.mapped != nil {
		lb.mapped.Free()
		lb.stored, lb.reqs, lb.runs = nil, nil, nil
	}
}

// loadedRun is order[start:end], read from offset off of its pack into
// stored[at:].
type loadedRun struct {
	start, end int
	off        int64
	at         int
}

// LoadBlocks reads the stored blobs of reqs into lb (reusing its buffers),
// pack by pack in runs of adjacent blobs. lb keeps reqs until it is
// opened.
func (r *Repository) LoadBlocks(ctx context.Context, reqs []BlockRequest, lb *LoadedBlocks) error {
	lb.reqs, lb.order, lb.runs = reqs, lb.order[:0], lb.runs[:0]
	for i := range reqs {
		lb.order = append(lb.order, i)
	}
	slices.SortFunc(lb.order, func(a, b int) int { return reqs[a].Loc.Compare(reqs[b].Loc) })
	total := 0
	for start := 0; start < len(lb.order); {
		first := &reqs[lb.order[start]].Loc
		runOff := int64(first.e.Offset)
		runEnd := runOff + int64(first.e.Length)
		end := start + 1
		for ; end < len(lb.order); end++ {
			l := &reqs[lb.order[end]].Loc
			off, e := int64(l.e.Offset), int64(l.e.Offset)+int64(l.e.Length)
			if l.pack != first.pack || off-runEnd > fetchGap || e-runOff > fetchRunBytes {
				break
			}
			runEnd = max(runEnd, e)
		}
		lb.runs = append(lb.runs, loadedRun{start: start, end: end, off: runOff, at: total})
		total += int(runEnd - runOff)
		start = end
	}
	switch {
	case lb.mapped != nil:
		stored, err := lb.mapped.Grow(total)
		if err != nil {
			return err
		}
		lb.stored = stored
	case cap(lb.stored) < total:
		lb.stored = make([]byte, total)
	default:
		lb.stored = lb.stored[:total]
	}
	for k, run := range lb.runs {
		end := total
		if k+1 < len(lb.runs) {
			end = lb.runs[k+1].at
		}
		name := reqs[lb.order[run.start]].Loc.pack.name()
		rc, err := r.be.Load(ctx, name, run.off, int64(end-run.at))
		if err != nil {
			return fmt.Errorf("load %s: %w", name, err)
		}
		_, err = io.ReadFull(rc, lb.stored[run.at:end])
		rc.Close()
		if err != nil {
			return fmt.Errorf("read %s at %d+%d: %w", name, run.off, end-run.at, err)
		}
	}
	return nil
}

// Open opens every block of lb, in storage order, and calls fn with its
// index in the requests and its checked plaintext, as Read does.
func (br *BlockReader) Open(ctx context.Context, lb *LoadedBlocks, fn func(i int, data []byte) error) error {
	return br.OpenRange(ctx, lb, 0, len(lb.reqs), fn)
}

// OpenRange is Open for the requests with index in [lo, hi) only: one
// load can serve blocks that must be opened in two passes.
func (br *BlockReader) OpenRange(ctx context.Context, lb *LoadedBlocks, lo, hi int, fn func(i int, data []byte) error) error {
	for _, run := range lb.runs {
		for _, i := range lb.order[run.start:run.end] {
			if i < lo || i >= hi {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			q := &lb.reqs[i]
			at := int64(run.at) + int64(q.Loc.e.Offset) - run.off
			data, err := br.r.openBlockTo(q.ID, q.Loc.pack, q.Loc.e, lb.stored[at:at+int64(q.Loc.e.Length)], &br.b, q.Dst)
			if err != nil {
				return err
			}
			if err := fn(i, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// grow returns b with length n, reallocating only when its capacity is
// smaller.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
