package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

// countingBackend counts ranged loads of packs.
type countingBackend struct {
	storage.Backend
	packLoads atomic.Int64
}

func (c *countingBackend) Load(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if len(name) > 6 && name[:6] == "packs/" {
		c.packLoads.Add(1)
	}
	return c.Backend.Load(ctx, name, off, n)
}

// fetchAll runs a BlockFetch over every block of m and returns copies of
// the blocks by id; a block delivered twice fails the test.
func fetchAll(t *testing.T, r *Repository, m *Manifest, parallel int) (map[BlockID][]byte, *BlockFetch) {
	t.Helper()
	var ids []BlockID
	for _, f := range m.Files {
		for _, ref := range f.Blocks {
			ids = append(ids, ref.ID)
		}
	}
	bf, err := r.NewBlockFetch(ids)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[BlockID][]byte{}
	err = bf.Run(context.Background(), parallel, func(id BlockID, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := got[id]; dup {
			return fmt.Errorf("block %s delivered twice", id.Short())
		}
		got[id] = bytes.Clone(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, bf
}

func TestBlockFetchLoadsEveryBlockOnceInFewReads(t *testing.T) {
	for _, comp := range []Compression{CompressZstd, CompressLZ4, CompressNone} {
		t.Run(string(comp), func(t *testing.T) {
			be := &countingBackend{Backend: storage.NewMem()}
			opts := testOptions()
			opts.Compression = comp
			r := initRepo(t, be, opts)
			files := append(sampleFiles(),
				testFile{"base/1/16385", pageLike(7, 40*PageSize)},
				testFile{"base/1/16386", pageLike(7, 40*PageSize)}, // same blocks as 16385
				testFile{"base/1/16387", randomData(8, 3<<20)},     // more than one pack
			)
			m := writeBackup(t, r, KindFull, nil, files)
			be.packLoads.Store(0)
			for _, parallel := range []int{1, 3} {
				got, bf := fetchAll(t, r, m, parallel)
				if len(got) != bf.Blocks() {
					t.Fatalf("parallel %d: %d blocks delivered, plan has %d", parallel, len(got), bf.Blocks())
				}
				if bf.Loads() >= bf.Blocks()/4 {
					t.Fatalf("parallel %d: %d reads for %d blocks: want runs of many blocks per read", parallel, bf.Loads(), bf.Blocks())
				}
				for _, f := range files {
					var b []byte
					for _, ref := range m.File(f.path).Blocks {
						b = append(b, got[ref.ID][ref.BlockOffset:ref.BlockOffset+ref.Length]...)
					}
					if !bytes.Equal(b, f.data) {
						t.Fatalf("parallel %d: %s assembled from fetched blocks differs from what was written", parallel, f.path)
					}
				}
			}
			if n := be.packLoads.Load(); n == 0 || n > 8 {
				t.Fatalf("%d pack loads for two fetches of one small backup", n)
			}
		})
	}
}

func TestBlockFetchRefusesMissingAndDamagedBlocks(t *testing.T) {
	t.Run("a block no index knows is refused before anything is read", func(t *testing.T) {
		_, r := memRepo(t)
		if _, err := r.NewBlockFetch([]BlockID{{1, 2, 3}}); !errors.Is(err, ErrBlockMissing) {
			t.Fatalf("got %v, want ErrBlockMissing", err)
		}
	})
	t.Run("a flipped byte in a pack fails authentication", func(t *testing.T) {
		be, r := memRepo(t)
		m := writeBackup(t, r, KindFull, nil, []testFile{{"a", randomData(70, 64*1024)}})
		packs := objectNames(t, be, "packs/")
		flipByte(t, be, packs[0], 40) // inside the first blob, whichever it is
		if err := fetch(t, r, blockIDs(m, "a"), 2, func(BlockID, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("a block in another block's place fails the id check", func(t *testing.T) {
		r, a := swappedBlocks(t)
		if err := fetch(t, r, []BlockID{a}, 1, func(BlockID, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("an error from the callback stops the fetch and is returned", func(t *testing.T) {
		_, r := memRepo(t)
		m := writeBackup(t, r, KindFull, nil, []testFile{{"a", randomData(92, 1<<20)}})
		stop := errors.New("disk full")
		var calls atomic.Int64
		err := fetch(t, r, blockIDs(m, "a"), 2, func(BlockID, []byte) error {
			calls.Add(1)
			return stop
		})
		if !errors.Is(err, stop) || calls.Load() > 2 {
			t.Fatalf("got %v after %d calls, want the callback's error after at most one call per goroutine", err, calls.Load())
		}
	})
}

func TestReadFileFetchesASharedBlockOnceForNearbyPieces(t *testing.T) {
	ctx := context.Background()
	be := &countingBackend{Backend: storage.NewMem()}
	r := initRepo(t, be, testOptions())
	old := pageLike(5, 16*PageSize)
	full := writeBackup(t, r, KindFull, nil, []testFile{{"rel", old}})
	// An incremental that changes every other page of the first block
	// refers to that block once per unchanged page.
	want := bytes.Clone(old)
	b, err := r.NewBackup(Header{Kind: KindIncr}, full)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := b.CreateFile(ctx, FileMeta{Path: "rel", Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	var steps []error
	for p := 0; p < 16; p++ {
		if p%2 == 1 && p*PageSize < 16*1024 {
			page := randomData(uint64(100+p), PageSize)
			copy(want[p*PageSize:], page)
			steps = append(steps, write(fw, page))
			continue
		}
		steps = append(steps, fw.Skip(PageSize))
	}
	steps = append(steps, fw.Close())
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	incr, err := b.Finish(ctx, b.Header())
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[BlockID]bool{}
	for _, ref := range incr.File("rel").Blocks {
		distinct[ref.ID] = true
	}
	be.packLoads.Store(0)
	checkFiles(t, r, incr, []testFile{{"rel", want}})
	if n := be.packLoads.Load(); n > int64(len(distinct)) {
		t.Fatalf("%d block loads for %d pieces of %d distinct blocks: want one per distinct block", n, len(incr.File("rel").Blocks), len(distinct))
	}
}

// Blocks carry the CRC-32C of their plaintext in the pack header and the
// index; the restore read path checks it (and verify the keyed id).
func TestBlockSumIsStoredAndChecked(t *testing.T) {
	ctx := context.Background()
	e := packEntry{ID: BlockID{7}, Offset: 9, Length: 100, RawLen: 8192, Comp: compZstd, Sum: 0xdeadbeef, HasSum: true}
	if got := readEntry(appendEntry(nil, e)); got != e {
		t.Fatalf("entry with a sum round-trips as %+v, want %+v", got, e)
	}
	old := packEntry{ID: BlockID{8}, Offset: 1, Length: 2, RawLen: 3, Comp: compLZ4}
	if got := readEntry(appendEntry(nil, old)); got != old {
		t.Fatalf("entry without a sum round-trips as %+v, want %+v", got, old)
	}
	_, r := memRepo(t)
	m := writeBackup(t, r, KindFull, nil, []testFile{{"a", randomData(93, 16*1024)}})
	a := m.File("a").Blocks[0].ID
	x := r.idx.Load().over // the packs this process saved
	x.mu.Lock()
	loc, ok := x.blocks[a]
	if !ok || !loc.pack.entries[loc.i].HasSum {
		x.mu.Unlock()
		t.Fatal("a newly written block has no plaintext checksum")
	}
	loc.pack.entries[loc.i].Sum ^= 1 // as if the writer had stored other content
	x.mu.Unlock()
	bf, err := r.NewBlockFetch([]BlockID{a})
	if err != nil {
		t.Fatal(err)
	}
	err = bf.Run(ctx, 1, func(BlockID, []byte) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("got %v, want ErrCorrupt naming the checksum", err)
	}
}

// blockIDs lists the blocks of file path in backup m, in file order.
func blockIDs(m *Manifest, path string) []BlockID {
	var ids []BlockID
	for _, ref := range m.File(path).Blocks {
		ids = append(ids, ref.ID)
	}
	return ids
}

// fetch runs a block fetch of ids on n goroutines, handing each block to
// fn, and returns what the fetch returned.
func fetch(t *testing.T, r *Repository, ids []BlockID, n int, fn func(BlockID, []byte) error) error {
	t.Helper()
	bf, err := r.NewBlockFetch(ids)
	if err != nil {
		t.Fatal(err)
	}
	return bf.Run(context.Background(), n, fn)
}
