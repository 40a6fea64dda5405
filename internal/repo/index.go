package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/pgguard/pgguard/internal/storage"
)

// packID is the SHA-256 of a pack's bytes.
type packID [32]byte

func (id packID) String() string { return hex.EncodeToString(id[:]) }

func (id packID) name() string {
	s := id.String()
	return "packs/" + s[:2] + "/" + s
}

func parsePackName(name string) (packID, bool) {
	var id packID
	base := name[strings.LastIndexByte(name, '/')+1:]
	b, err := hex.DecodeString(base)
	if err != nil || len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, true
}

// packEntry describes one block inside a pack.
type packEntry struct {
	ID     BlockID
	Offset uint64
	Length uint32 // stored (sealed) length
	RawLen uint32 // plaintext length
	Comp   byte
	// Sum, when HasSum, is the CRC-32C of the plaintext: restore checks it
	// instead of recomputing the keyed block id (verify still does that).
	Sum    uint32
	HasSum bool
}

// entrySumFlag, in an entry's compression byte, says that the next field
// (reserved in packs written before it) holds the plaintext's CRC-32C.
const entrySumFlag = 0x80

const entrySize = 32 + 8 + 4 + 4 + 1 + 4

func appendEntry(b []byte, e packEntry) []byte {
	b = append(b, e.ID[:]...)
	b = binary.LittleEndian.AppendUint64(b, e.Offset)
	b = binary.LittleEndian.AppendUint32(b, e.Length)
	b = binary.LittleEndian.AppendUint32(b, e.RawLen)
	if !e.HasSum {
		b = append(b, e.Comp)
		return binary.LittleEndian.AppendUint32(b, 0)
	}
	b = append(b, e.Comp|entrySumFlag)
	return binary.LittleEndian.AppendUint32(b, e.Sum)
}

func readEntry(b []byte) packEntry {
	var e packEntry
	copy(e.ID[:], b[:32])
	e.Offset = binary.LittleEndian.Uint64(b[32:])
	e.Length = binary.LittleEndian.Uint32(b[40:])
	e.RawLen = binary.LittleEndian.Uint32(b[44:])
	e.Comp = b[48] &^ entrySumFlag
	if b[48]&entrySumFlag != 0 {
		e.HasSum, e.Sum = true, binary.LittleEndian.Uint32(b[49:])
	}
	return e
}

type packMeta struct {
	id      packID
	entries []packEntry
}

func (p *packMeta) storedBytes() int64 {
	var n int64
	for _, e := range p.entries {
		n += int64(e.Length)
	}
	return n
}

type blockLoc struct {
	pack *packMeta
	i    int32
}

// index maps block ids to their place in packs, in memory: the packs this
// process saved or found since the index was loaded (blockIndex.over), and
// GC's view of the whole repository (loadMemIndex).
type index struct {
	mu      sync.RWMutex
	packs   map[packID]*packMeta
	blocks  map[BlockID]blockLoc
	objects map[string]struct{} // index object names loaded or saved
}

func newIndex() *index {
	return &index{packs: map[packID]*packMeta{}, blocks: map[BlockID]blockLoc{}, objects: map[string]struct{}{}}
}

func (x *index) add(p *packMeta) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.packs[p.id]; ok {
		return
	}
	x.packs[p.id] = p
	for i, e := range p.entries {
		if _, ok := x.blocks[e.ID]; !ok {
			x.blocks[e.ID] = blockLoc{pack: p, i: int32(i)}
		}
	}
}

func (x *index) has(id BlockID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.blocks[id]
	return ok
}

func (x *index) lookup(id BlockID) (packID, packEntry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.blocks[id]
	if !ok {
		return packID{}, packEntry{}, false
	}
	return l.pack.id, l.pack.entries[l.i], true
}

func (x *index) hasPack(id packID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.packs[id]
	return ok
}

// blockIndex is the repository's index as a backup, a restore and every
// other command but GC see it: the entries of the index objects in a
// table (index_table.go), which takes little memory whatever the
// repository's size, and the packs saved or found since in memory.
// Immutable but for over, which has its own lock.
type blockIndex struct {
	base    *table
	packs   []packID // by the pack ordinals of base's records
	packSet map[packID]struct{}
	loaded  map[string]struct{} // the index objects base was built from
	missing int                 // packs they name that the storage lacks
	over    *index
}

func newBlockIndex() *blockIndex {
	return &blockIndex{packSet: map[packID]struct{}{}, loaded: map[string]struct{}{}, over: newIndex()}
}

func (x *blockIndex) has(id BlockID) bool {
	if x.over.has(id) {
		return true
	}
	_, _, ok := x.base.lookup(id)
	return ok
}

func (x *blockIndex) lookup(id BlockID) (packID, packEntry, bool) {
	if p, e, ok := x.over.lookup(id); ok {
		return p, e, true
	}
	e, ord, ok := x.base.lookup(id)
	if !ok || int(ord) >= len(x.packs) {
		return packID{}, packEntry{}, false
	}
	return x.packs[ord], e, true
}

func (x *blockIndex) hasPack(id packID) bool {
	if _, ok := x.packSet[id]; ok {
		return true
	}
	return x.over.hasPack(id)
}

// add makes the blocks of p known, unless the table has p already.
func (x *blockIndex) add(p *packMeta) {
	if _, ok := x.packSet[p.id]; ok {
		return
	}
	x.over.add(p)
}

// packIDs lists every pack the index knows.
func (x *blockIndex) packIDs() []packID {
	out := slices.Clone(x.packs)
	x.over.mu.RLock()
	defer x.over.mu.RUnlock()
	for id := range x.over.packs {
		if _, ok := x.packSet[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

func (x *blockIndex) addObject(name string) {
	x.over.mu.Lock()
	x.over.objects[name] = struct{}{}
	x.over.mu.Unlock()
}

// objectNames lists the index objects loaded or saved.
func (x *blockIndex) objectNames() []string {
	x.over.mu.RLock()
	defer x.over.mu.RUnlock()
	out := make([]string, 0, len(x.over.objects))
	for name := range x.over.objects {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// maxIndexEntries bounds the entries of one index object written, so that
// loading one costs a few MiB (a reader holds a whole object: it is one
// sealed blob). Objects written before the bound may be larger; they are
// read all the same.
const maxIndexEntries = 1 << 15

func encodeIndex(packs []*packMeta) []byte {
	b := []byte{1}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(packs)))
	for _, p := range packs {
		b = append(b, p.id[:]...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.entries)))
		for _, e := range p.entries {
			b = appendEntry(b, e)
		}
	}
	return b
}

var errShortIndex = errors.New("index object truncated")

// walkIndex calls fn for each pack of an index object with its entries
// as stored (entrySize bytes each), without copying them.
func walkIndex(b []byte, fn func(id packID, entries []byte) error) error {
	if len(b) < 5 || b[0] != 1 {
		return fmt.Errorf("index object: unknown version")
	}
	n := binary.LittleEndian.Uint32(b[1:])
	b = b[5:]
	for range n {
		if len(b) < 36 {
			return errShortIndex
		}
		var id packID
		copy(id[:], b)
		cnt := int(binary.LittleEndian.Uint32(b[32:]))
		b = b[36:]
		if len(b) < cnt*entrySize {
			return errShortIndex
		}
		if err := fn(id, b[:cnt*entrySize]); err != nil {
			return err
		}
		b = b[cnt*entrySize:]
	}
	return nil
}

func decodeIndex(b []byte) ([]*packMeta, error) {
	var packs []*packMeta
	err := walkIndex(b, func(id packID, raw []byte) error {
		p := &packMeta{id: id, entries: make([]packEntry, len(raw)/entrySize)}
		for i := range p.entries {
			p.entries[i] = readEntry(raw[i*entrySize:])
		}
		packs = append(packs, p)
		return nil
	})
	return packs, err
}

// saveIndex writes index objects listing packs, each with at most
// maxIndexEntries entries (or one pack, if it has more), and returns
// their names.
func (r *Repository) saveIndex(ctx context.Context, packs []*packMeta) ([]string, error) {
	var names []string
	for len(packs) > 0 {
		k, entries := 0, 0
		for k < len(packs) && (k == 0 || entries+len(packs[k].entries) <= maxIndexEntries) {
			entries += len(packs[k].entries)
			k++
		}
		plain := encodeIndex(packs[:k])
		sum := sha256.Sum256(plain)
		name := "index/" + hex.EncodeToString(sum[:])
		if err := r.saveObject(ctx, name, "index", plain, compZstd); err != nil {
			return names, fmt.Errorf("save index: %w", err)
		}
		r.idx.Load().addObject(name)
		names = append(names, name)
		packs = packs[k:]
	}
	return names, nil
}

// LoadIndex (re)reads the index objects. Packs saved by this process stay
// known. Lock calls it after acquiring a lock, so the index is current;
// when only new index objects appeared since the last load (the usual case
// between Open and Lock), it reads just those.
func (r *Repository) LoadIndex(ctx context.Context) error {
	// A concurrent Flush moves packs from unindexed into an index object;
	// keep it out so no pack falls between the listing and the merge.
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	objs, present, err := r.listIndex(ctx)
	if err != nil {
		return err
	}
	cur := r.idx.Load()
	var fresh *blockIndex
	if news, ok := cur.stillValid(objs, present); ok && len(news) <= reloadObjects {
		fresh = &blockIndex{base: cur.base, packs: cur.packs, packSet: cur.packSet, loaded: cur.loaded, missing: cur.missing, over: newIndex()}
		var mu sync.Mutex
		err = r.loadObjects(ctx, news, func(id packID, raw []byte) {
			mu.Lock()
			defer mu.Unlock()
			if !present[id] {
				fresh.missing++
				return
			}
			p := &packMeta{id: id, entries: make([]packEntry, len(raw)/entrySize)}
			for i := range p.entries {
				p.entries[i] = readEntry(raw[i*entrySize:])
			}
			fresh.add(p)
		})
	} else {
		fresh, err = r.buildIndex(ctx, objs, present)
	}
	if err != nil {
		return err
	}
	for _, obj := range objs {
		fresh.over.objects[obj.Name] = struct{}{}
	}
	r.wmu.Lock()
	for _, p := range r.unindexed {
		fresh.add(p)
	}
	r.idx.Store(fresh)
	r.missingPacks = fresh.missing
	r.wmu.Unlock()
	return nil
}

// reloadObjects is how many new index objects LoadIndex adds to the
// packs in memory rather than building the table again.
const reloadObjects = 8

// stillValid returns the index objects not loaded into x's table, and
// whether the table still describes the repository: every object it was
// built from is still there, and so is every pack it names.
func (x *blockIndex) stillValid(objs []storage.FileInfo, present map[packID]bool) ([]storage.FileInfo, bool) {
	if len(x.loaded) == 0 {
		return nil, false
	}
	var news []storage.FileInfo
	seen := 0
	for _, obj := range objs {
		if _, ok := x.loaded[obj.Name]; ok {
			seen++
		} else {
			news = append(news, obj)
		}
	}
	if seen != len(x.loaded) {
		return nil, false
	}
	for _, id := range x.packs {
		if !present[id] {
			return nil, false
		}
	}
	return news, true
}

// listIndex lists the index objects, then the packs that exist (a pack is
// saved before any index object names it): a block is deduplicated only
// against a pack that is there, so a pack deleted outside pgguard costs a
// re-upload, not a backup that cannot be restored.
func (r *Repository) listIndex(ctx context.Context) ([]storage.FileInfo, map[packID]bool, error) {
	var objs []storage.FileInfo
	err := r.be.List(ctx, "index/", func(fi storage.FileInfo) error {
		objs = append(objs, fi)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list index: %w", err)
	}
	slices.SortFunc(objs, func(a, b storage.FileInfo) int { return strings.Compare(a.Name, b.Name) })
	present := map[packID]bool{}
	err = r.be.List(ctx, "packs/", func(fi storage.FileInfo) error {
		if id, ok := parsePackName(fi.Name); ok {
			present[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list packs: %w", err)
	}
	return objs, present, nil
}

// indexLoadBudget bounds the stored bytes of the index objects being
// loaded at once; a larger object (written before maxIndexEntries) is
// loaded alone.
const indexLoadBudget = 8 << 20

// loadObjects loads index objects, a few at a time, and calls fn for each
// pack they list (from several goroutines).
func (r *Repository) loadObjects(ctx context.Context, objs []storage.FileInfo, fn func(id packID, entries []byte)) error {
	// Each goroutine holds one whole object (a sealed blob is opened
	// whole): a few keep the storage busy without holding many.
	sem := semaphore.NewWeighted(indexLoadBudget)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(r.rt.Parallel, 1))
	for _, obj := range objs {
		w := min(max(obj.Size, 1), indexLoadBudget)
		if err := sem.Acquire(gctx, w); err != nil {
			break
		}
		g.Go(func() error {
			defer sem.Release(w)
			plain, err := r.loadObject(gctx, obj.Name, "index")
			if err != nil {
				return fmt.Errorf("load index: %w", err)
			}
			err = walkIndex(plain, func(id packID, raw []byte) error {
				fn(id, raw)
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s: %w (run rebuild-index)", obj.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// buildIndex reads every index object into a new table.
func (r *Repository) buildIndex(ctx context.Context, objs []storage.FileInfo, present map[packID]bool) (*blockIndex, error) {
	x := newBlockIndex()
	b := newTableBuilder(r.rt.TempDir)
	var (
		mu   sync.Mutex
		werr error
	)
	err := r.loadObjects(ctx, objs, func(id packID, raw []byte) {
		mu.Lock()
		defer mu.Unlock()
		if !present[id] {
			x.missing++
			return
		}
		if _, dup := x.packSet[id]; dup || werr != nil {
			return
		}
		ord := uint32(len(x.packs))
		x.packs = append(x.packs, id)
		x.packSet[id] = struct{}{}
		for i := 0; i < len(raw) && werr == nil; i += entrySize {
			werr = b.add(readEntry(raw[i:]), ord)
		}
	})
	if err == nil {
		err = werr
	}
	if err == nil {
		x.base, err = b.finish()
	}
	if err != nil {
		if b.spill != nil {
			b.spill.Close()
		}
		return nil, err
	}
	for _, obj := range objs {
		x.loaded[obj.Name] = struct{}{}
	}
	return x, nil
}

// loadMemIndex reads every index object into memory, with the packs this
// process saved: GC's view, which needs every entry of every pack.
func (r *Repository) loadMemIndex(ctx context.Context) (*index, error) {
	objs, present, err := r.listIndex(ctx)
	if err != nil {
		return nil, err
	}
	x := newIndex()
	var mu sync.Mutex
	err = r.loadObjects(ctx, objs, func(id packID, raw []byte) {
		if !present[id] {
			return
		}
		p := &packMeta{id: id, entries: make([]packEntry, len(raw)/entrySize)}
		for i := range p.entries {
			p.entries[i] = readEntry(raw[i*entrySize:])
		}
		mu.Lock()
		defer mu.Unlock()
		x.add(p)
	})
	if err != nil {
		return nil, err
	}
	for _, obj := range objs {
		x.objects[obj.Name] = struct{}{}
	}
	over := r.idx.Load().over
	over.mu.RLock()
	for _, p := range over.packs {
		x.add(p)
	}
	over.mu.RUnlock()
	return x, nil
}

// forEach runs fn(0..n-1) on up to Runtime.Parallel goroutines and returns
// the first error; it stops starting work once one fails.
func (r *Repository) forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(r.rt.Parallel, 1))
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // stopping: Wait or ctx has the error
			}
			return fn(gctx, i)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// MissingPacks is how many packs the index objects name that the storage
// does not hold (deleted outside pgguard), as of the last index load;
// their blocks are stored again when a backup needs them, and 'verify'
// names the backups that used them.
func (r *Repository) MissingPacks() int {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.missingPacks
}
