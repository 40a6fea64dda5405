package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pgguard/pgguard/internal/storage"
)

// RebuildStats reports what RebuildIndex found.
type RebuildStats struct {
	PacksScanned int      // packs in the repository
	PacksAdded   int      // packs no index listed, now indexed
	BlocksAdded  int      // blocks in those packs
	Damaged      []string // packs whose header could not be read; left alone
}

// RebuildIndex scans the pack headers of every pack no index object lists
// (for example packs uploaded by a backup killed before it wrote its index)
// and writes one index object for them, so their blocks are reused instead
// of uploaded again.
func (r *Repository) RebuildIndex(ctx context.Context) (RebuildStats, error) {
	var st RebuildStats
	var todo []storage.FileInfo
	x := r.idx.Load()
	err := r.be.List(ctx, "packs/", func(fi storage.FileInfo) error {
		st.PacksScanned++
		id, ok := parsePackName(fi.Name)
		if !ok {
			st.Damaged = append(st.Damaged, fi.Name)
			return nil
		}
		if !x.hasPack(id) {
			todo = append(todo, fi)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("rebuild index: list packs: %w", err)
	}
	var mu sync.Mutex
	var found []*packMeta
	err = r.forEach(ctx, len(todo), func(ctx context.Context, i int) error {
		id, _ := parsePackName(todo[i].Name)
		entries, err := r.readPackHeader(ctx, todo[i].Name, todo[i].Size)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			st.Damaged = append(st.Damaged, todo[i].Name)
			return nil
		}
		found = append(found, &packMeta{id: id, entries: entries})
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("rebuild index: %w", err)
	}
	if len(found) == 0 {
		return st, nil
	}
	if _, err := r.saveIndex(ctx, found); err != nil {
		return st, fmt.Errorf("rebuild index: %w", err)
	}
	for _, p := range found {
		r.idx.Load().add(p)
		st.PacksAdded++
		st.BlocksAdded += len(p.entries)
	}
	return st, nil
}

// GCStats reports what GC did.
type GCStats struct {
	Backups       int   // manifests kept
	BlocksLive    int   // distinct blocks they reference
	BlocksRemoved int   // blocks dropped (unreferenced or duplicate copies)
	PacksDeleted  int   // packs removed, including repacked ones
	PacksRepacked int   // packs whose live blocks were copied into new packs
	BytesFreed    int64 // stored block bytes no longer kept
}

// repackBelow: a pack with less than this share of live bytes is rewritten.
const repackBelow = 0.5

// GC removes blocks no manifest references. It needs the exclusive lock
// (Lock(ctx, true)). Order: index leftover packs; copy live blocks of
// mostly-dead packs into new packs and save them; save one new index for
// every kept and new pack; delete the old index objects; delete the old
// packs. An interruption at any point leaves every manifest restorable:
// until the new index is saved the old ones still describe existing packs,
// and packs left behind afterwards are unindexed and removed by the next GC.
func (r *Repository) GC(ctx context.Context) (GCStats, error) {
	var st GCStats
	if !r.holdsExclusive() {
		return st, errors.New("gc: take the exclusive lock first (no backup may run during gc)")
	}
	if err := r.Flush(ctx); err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	if rs, err := r.RebuildIndex(ctx); err != nil {
		return st, fmt.Errorf("gc: %w", err)
	} else if len(rs.Damaged) > 0 {
		return st, fmt.Errorf("gc: packs with unreadable headers: %s; run verify and move them away before gc", strings.Join(rs.Damaged, ", "))
	}
	live, n, err := r.liveBlocks(ctx)
	if err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	st.Backups, st.BlocksLive = n, len(live)

	// GC needs every entry of every pack: the whole index in memory.
	x, err := r.loadMemIndex(ctx)
	if err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	x.mu.RLock()
	oldObjects := make([]string, 0, len(x.objects))
	for name := range x.objects {
		oldObjects = append(oldObjects, name)
	}
	var drop, repack []*packMeta
	for _, p := range x.packs {
		var liveBytes int64
		liveCount := 0
		for i, e := range p.entries {
			if l := x.blocks[e.ID]; l.pack == p && int(l.i) == i && live[e.ID] {
				liveBytes += int64(e.Length)
				liveCount++
			}
		}
		switch {
		case liveCount == 0:
			drop = append(drop, p)
		case float64(liveBytes) < repackBelow*float64(p.storedBytes()):
			repack = append(repack, p)
		default:
			continue // kept whole, dead blocks included
		}
		st.BlocksRemoved += len(p.entries) - liveCount
		st.BytesFreed += p.storedBytes() - liveBytes
	}
	x.mu.RUnlock()

	for _, p := range repack {
		if err := r.repack(ctx, x, p, live); err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	gone := map[packID]bool{}
	for _, p := range append(drop, repack...) {
		gone[p.id] = true
	}
	// The packs the repacking saved are in this process's index.
	cur := r.idx.Load()
	cur.over.mu.RLock()
	for _, p := range cur.over.packs {
		x.add(p)
	}
	cur.over.mu.RUnlock()
	oldObjects = append(oldObjects, cur.objectNames()...)
	x.mu.RLock()
	var keep []*packMeta
	for id, p := range x.packs {
		if !gone[id] {
			keep = append(keep, p)
		}
	}
	x.mu.RUnlock()
	newNames, err := r.saveIndex(ctx, keep)
	if err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	seen := map[string]bool{}
	for _, name := range newNames {
		seen[name] = true
	}
	removed := map[string]bool{}
	for _, name := range oldObjects {
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := r.be.Remove(ctx, name); err != nil && !storage.IsNotExist(err) {
			return st, fmt.Errorf("gc: remove old index: %w", err)
		}
		removed[name] = true
	}
	for _, p := range append(drop, repack...) {
		if err := r.be.Remove(ctx, p.id.name()); err != nil && !storage.IsNotExist(err) {
			return st, fmt.Errorf("gc: remove pack: %w", err)
		}
		st.PacksDeleted++
	}
	st.PacksRepacked = len(repack)
	if err := r.LoadIndex(ctx); err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	if err := r.commitHead(ctx, removed); err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	return st, nil
}

// liveBlocks returns every block id a manifest references and the number of
// manifests; it fails if any manifest cannot be read or names a block no
// index knows, since deleting anything then could break a backup.
func (r *Repository) liveBlocks(ctx context.Context) (map[BlockID]bool, int, error) {
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return nil, 0, err
	}
	live := map[BlockID]bool{}
	x := r.idx.Load()
	for _, id := range ids {
		m, err := r.LoadManifest(ctx, id)
		if err != nil {
			return nil, 0, fmt.Errorf("%w; refusing to collect garbage while a manifest is unreadable", err)
		}
		for _, f := range m.Files {
			for _, b := range f.Blocks {
				if !x.has(b.ID) {
					return nil, 0, fmt.Errorf("backup %s file %s: block %s: %w; refusing to collect garbage", id, f.Path, b.ID.Short(), ErrBlockMissing)
				}
				live[b.ID] = true
			}
		}
	}
	return live, len(ids), nil
}

// repack copies the live blocks of p whose chosen copy is in p into new
// packs, checking each one on the way.
func (r *Repository) repack(ctx context.Context, x *index, p *packMeta, live map[BlockID]bool) error {
	data, err := loadAll(ctx, r.be, p.id.name())
	if err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	for i, e := range p.entries {
		x.mu.RLock()
		l := x.blocks[e.ID]
		x.mu.RUnlock()
		if !live[e.ID] || l.pack != p || int(l.i) != i {
			continue
		}
		if e.Offset+uint64(e.Length) > uint64(len(data)) {
			return fmt.Errorf("repack %s: block %s lies outside the pack", p.id.name(), e.ID.Short())
		}
		blob := data[e.Offset : e.Offset+uint64(e.Length)]
		if _, err := r.openBlock(e.ID, p.id, e, blob); err != nil {
			return fmt.Errorf("repack: %w; run verify", err)
		}
		if err := r.addBlob(ctx, e.ID, blob, int(e.RawLen), e.Comp); err != nil {
			return fmt.Errorf("repack: %w", err)
		}
	}
	return nil
}
