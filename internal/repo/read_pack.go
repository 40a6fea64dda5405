package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pierrec/lz4/v4"
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(max(parallel, 1), max(len(f.runs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b fetchBuffers
			for {
				i := int(next.Add(1) - 1)
				if i >= len(f.runs) || ctx.Err() != nil {
					return
				}
				if err := f.r.fetchRun(ctx, &f.runs[i], &b, fn); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
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
	var err error
	b.opened, err = r.keys.sealer.open(b.opened[:0], blob, id[:])
	if err != nil {
		return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, err)
	}
	var data []byte
	switch e.Comp {
	case compNone:
		data = b.opened
	case compZstd:
		if cap(b.plain) < int(e.RawLen) {
			b.plain = make([]byte, 0, e.RawLen)
		}
		b.plain, err = r.comp.dec.DecodeAll(b.opened, b.plain[:0])
		if err != nil {
			err = fmt.Errorf("zstd: %w", err)
		}
		data = b.plain
	case compLZ4:
		b.plain = grow(b.plain, int(e.RawLen))
		var n int
		n, err = lz4.UncompressBlock(b.opened, b.plain)
		if err != nil {
			err = fmt.Errorf("lz4: %w", err)
		}
		data = b.plain[:n]
	default:
		err = fmt.Errorf("unknown compression code %d", e.Comp)
	}
	if err == nil && len(data) != int(e.RawLen) {
		err = fmt.Errorf("decompressed to %d bytes, the index says %d", len(data), e.RawLen)
	}
	if err != nil {
		return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, err)
	}
	if r.keys.blockID(data) != id {
		return nil, fmt.Errorf("block %s in pack %s: %w: %w", id.Short(), pack, ErrCorrupt, errors.New("content does not match its id"))
	}
	return data, nil
}

// grow returns b with length n, reallocating only when its capacity is
// smaller.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
