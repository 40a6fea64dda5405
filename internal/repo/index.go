package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

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

// index maps block ids to their place in packs; it is the union of every
// index object loaded plus the packs this process saved.
type index struct {
	mu      sync.RWMutex
	packs   map[packID]*packMeta
	blocks  map[BlockID]blockLoc
	objects map[string]struct{} // index object names loaded
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

func decodeIndex(b []byte) ([]*packMeta, error) {
	if len(b) < 5 || b[0] != 1 {
		return nil, fmt.Errorf("index object: unknown version")
	}
	n := binary.LittleEndian.Uint32(b[1:])
	b = b[5:]
	packs := make([]*packMeta, 0, n)
	for range n {
		if len(b) < 36 {
			return nil, errShortIndex
		}
		p := &packMeta{}
		copy(p.id[:], b)
		cnt := int(binary.LittleEndian.Uint32(b[32:]))
		b = b[36:]
		if len(b) < cnt*entrySize {
			return nil, errShortIndex
		}
		p.entries = make([]packEntry, cnt)
		for i := range cnt {
			p.entries[i] = readEntry(b[i*entrySize:])
		}
		b = b[cnt*entrySize:]
		packs = append(packs, p)
	}
	return packs, nil
}

// saveIndex writes one index object listing packs and returns its name.
func (r *Repository) saveIndex(ctx context.Context, packs []*packMeta) (string, error) {
	plain := encodeIndex(packs)
	sum := sha256.Sum256(plain)
	name := "index/" + hex.EncodeToString(sum[:])
	if err := r.saveObject(ctx, name, "index", plain, compZstd); err != nil {
		return "", fmt.Errorf("save index: %w", err)
	}
	x := r.idx.Load()
	x.mu.Lock()
	x.objects[name] = struct{}{}
	x.mu.Unlock()
	return name, nil
}

// LoadIndex (re)reads every index object. Packs saved by this process stay
// known. Lock calls it after acquiring a lock, so the index is current.
func (r *Repository) LoadIndex(ctx context.Context) error {
	// A concurrent Flush moves packs from unindexed into an index object;
	// keep it out so no pack falls between the listing and the merge.
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	var names []string
	err := r.be.List(ctx, "index/", func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	// The packs that exist, listed after the index objects (a pack is
	// saved before any index object names it): a block is deduplicated
	// only against a pack that is there, so a pack deleted outside
	// pgguard costs a re-upload, not a backup that cannot be restored.
	present := map[packID]bool{}
	err = r.be.List(ctx, "packs/", func(fi storage.FileInfo) error {
		if id, ok := parsePackName(fi.Name); ok {
			present[id] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	missing := 0
	fresh := newIndex()
	var mu sync.Mutex
	err = r.forEach(ctx, len(names), func(ctx context.Context, i int) error {
		plain, err := r.loadObject(ctx, names[i], "index")
		if err != nil {
			return fmt.Errorf("load index: %w", err)
		}
		packs, err := decodeIndex(plain)
		if err != nil {
			return fmt.Errorf("%s: %w (run rebuild-index)", names[i], err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range packs {
			if !present[p.id] {
				missing++
				continue
			}
			fresh.add(p)
		}
		fresh.objects[names[i]] = struct{}{}
		return nil
	})
	if err != nil {
		return err
	}
	r.wmu.Lock()
	for _, p := range r.unindexed {
		fresh.add(p)
	}
	r.idx.Store(fresh)
	r.missingPacks = missing
	r.wmu.Unlock()
	return nil
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
