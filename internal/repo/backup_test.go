package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

func sampleFiles() []testFile {
	return []testFile{
		{"base/1/1259", pageLike(1, 5*PageSize)},
		{"base/1/16384", randomData(2, 300*1024+123)}, // not a block multiple
		{"global/pg_control", randomData(3, PageSize)},
		{"pg_hba.conf", []byte("local all all trust\n")},
		{"empty", nil},
	}
}

func TestBackupRoundTripsForEveryCipherAndCompression(t *testing.T) {
	for _, c := range []Cipher{AES256GCM, XChaCha20Poly1305} {
		for _, comp := range []Compression{CompressZstd, CompressLZ4, CompressNone} {
			t.Run(fmt.Sprintf("%s/%s", c, comp), func(t *testing.T) {
				be := storage.NewMem()
				opts := testOptions()
				opts.Cipher, opts.Compression = c, comp
				r := initRepo(t, be, opts)
				files := sampleFiles()
				m := writeBackup(t, r, KindFull, nil, files)
				r2 := reopen(t, be, Runtime{})
				m2, err := r2.LoadManifest(context.Background(), m.ID)
				if err != nil {
					t.Fatal(err)
				}
				checkFiles(t, r2, m2, files)
				if f := m2.File("base/1/16384"); f.Size != int64(len(files[1].data)) || f.Mode != 0o600 {
					t.Fatalf("file entry %+v does not keep size and mode", f)
				}
			})
		}
	}
}

func TestCompressibleBlocksAreStoredSmaller(t *testing.T) {
	_, r := memRepo(t)
	data := pageLike(4, 64*PageSize)
	b, _ := r.NewBackup(Header{Kind: KindFull}, nil)
	fw, _ := b.CreateFile(context.Background(), FileMeta{Path: "f"})
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish(context.Background(), Header{Kind: KindFull}); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.BytesNew*4 > st.BytesIn {
		t.Fatalf("compressible data: stored %d of %d bytes, want under a quarter", st.BytesNew, st.BytesIn)
	}
}

func TestSecondBackupOfIdenticalDataStoresNothingNew(t *testing.T) {
	be, r := memRepo(t)
	files := sampleFiles()
	writeBackup(t, r, KindFull, nil, files)
	packsBefore := objectNames(t, be, "packs/")

	r2 := reopen(t, be, Runtime{Parallel: 3})
	b, err := r2.NewBackup(Header{Kind: KindFull}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		fw, _ := b.CreateFile(context.Background(), FileMeta{Path: f.path})
		fw.Write(f.data)
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := b.Finish(context.Background(), Header{Kind: KindFull})
	if err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.BytesNew != 0 || st.BlocksNew != 0 || st.BlocksDeduplicated == 0 {
		t.Fatalf("second identical backup: %+v, want no new bytes and every block deduplicated", st)
	}
	if packsAfter := objectNames(t, be, "packs/"); len(packsAfter) != len(packsBefore) {
		t.Fatalf("second identical backup added packs: %d -> %d", len(packsBefore), len(packsAfter))
	}
	checkFiles(t, r2, m, files)
}

func TestIdenticalBlocksWithinOneBackupAreStoredOnce(t *testing.T) {
	_, r := memRepo(t)
	block := randomData(9, 16*1024)
	m := writeBackup(t, r, KindFull, nil, []testFile{{"a", bytes.Repeat(block, 4)}, {"b", block}})
	ids := map[BlockID]bool{}
	for _, f := range m.Files {
		for _, b := range f.Blocks {
			ids[b.ID] = true
		}
	}
	if len(ids) != 1 {
		t.Fatalf("five copies of one block gave %d distinct ids, want 1", len(ids))
	}
}

// An incremental backup writes only changed pages and skips the rest; the
// manifest is complete, and reads back the new content even after the
// full backup it was taken against is deleted and collected.
func TestIncrementalReusesBlocksAndStandsAlone(t *testing.T) {
	ctx := context.Background()
	be, r := memRepo(t) // 16 KiB blocks = 2 pages
	old := randomData(10, 6*PageSize+100)
	full := writeBackup(t, r, KindFull, nil, []testFile{{"rel", old}, {"same", randomData(11, 3*PageSize)}})

	// Page 3 changed (the second page of block 1), the rest did not.
	changed := randomData(12, PageSize)
	want := append([]byte(nil), old...)
	copy(want[3*PageSize:], changed)

	b, err := r.NewBackup(Header{Kind: KindIncr, Parent: full.ID, StartTime: time.Now()}, full)
	if err != nil {
		t.Fatal(err)
	}
	fw, _ := b.CreateFile(ctx, FileMeta{Path: "rel"})
	steps := []error{fw.Skip(3 * PageSize), write(fw, changed), fw.Skip(int64(len(old)) - 4*PageSize), fw.Close()}
	same, _ := b.CreateFile(ctx, FileMeta{Path: "same"})
	steps = append(steps, same.Skip(3*PageSize), same.Close())
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	incr, err := b.Finish(ctx, b.Header())
	if err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.BytesIn != PageSize || st.BlocksNew != 1 {
		t.Fatalf("incremental stats %+v, want one new page read and stored", st)
	}
	if f := incr.File("rel"); f.Size != int64(len(old)) || f.Blocks[1].BlockOffset != 0 || f.Blocks[2].Length != PageSize {
		t.Fatalf("incremental block list %+v does not place the changed page", f.Blocks)
	}
	if incr.Parent != full.ID || incr.Kind != KindIncr || incr.StartTime.IsZero() {
		t.Fatalf("incremental header %+v lost kind, parent or start time", incr.Header)
	}
	if got, wantSame := incr.File("same").Checksum, full.File("same").Checksum; got != wantSame {
		t.Fatalf("unchanged file checksum %s, full backup had %s", got, wantSame)
	}

	lk, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteManifest(ctx, full.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GC(ctx); err != nil {
		t.Fatal(err)
	}
	lk.Unlock(ctx)
	r2 := reopen(t, be, Runtime{})
	m, err := r2.LoadManifest(ctx, incr.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, r2, m, []testFile{{"rel", want}})
}

func write(fw *FileWriter, p []byte) error {
	_, err := fw.Write(p)
	return err
}

func TestSkipBeyondPreviousFileFails(t *testing.T) {
	_, r := memRepo(t)
	full := writeBackup(t, r, KindFull, nil, []testFile{{"rel", randomData(1, PageSize)}})
	b, _ := r.NewBackup(Header{Kind: KindIncr}, full)
	cases := []struct {
		name string
		path string
		n    int64
		want string
	}{
		{"skip past the previous size is refused", "rel", 2 * PageSize, "has only"},
		{"skip in a file the previous backup lacks is refused", "new", PageSize, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fw, _ := b.CreateFile(context.Background(), FileMeta{Path: c.path})
			if err := fw.Skip(c.n); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

// A backup killed after its packs were saved but before index and manifest
// leaves no manifest; after reopening and RebuildIndex, running it again
// uploads nothing.
func TestCrashBeforeIndexThenResumeStoresNothingNew(t *testing.T) {
	ctx := context.Background()
	mem, _ := memRepo(t)
	crashing := &faultBackend{Backend: mem, failSave: func(name string) bool {
		return strings.HasPrefix(name, "index/") || strings.HasPrefix(name, "manifests/")
	}}
	r := reopen(t, crashing, Runtime{Parallel: 2})
	files := []testFile{{"a", randomData(20, 1500*1024)}, {"b", randomData(21, 40*1024)}}
	b, _ := r.NewBackup(Header{Kind: KindFull}, nil)
	for _, f := range files {
		fw, _ := b.CreateFile(ctx, FileMeta{Path: f.path})
		fw.Write(f.data)
		fw.Close()
	}
	if _, err := b.Finish(ctx, Header{Kind: KindFull}); !errors.Is(err, errInjected) {
		t.Fatalf("finish with index writes failing: got %v, want the injected failure", err)
	}
	if got := objectNames(t, mem, "manifests/"); len(got) != 0 {
		t.Fatalf("a manifest exists after the crash: %v", got)
	}
	if packs := objectNames(t, mem, "packs/"); len(packs) == 0 {
		t.Fatal("the crashed backup saved no packs; the test proves nothing")
	}

	r2 := reopen(t, mem, Runtime{Parallel: 2})
	rs, err := r2.RebuildIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs.PacksAdded == 0 || len(rs.Damaged) != 0 {
		t.Fatalf("rebuild index: %+v, want the crashed packs added", rs)
	}
	b2, _ := r2.NewBackup(Header{Kind: KindFull}, nil)
	for _, f := range files {
		fw, _ := b2.CreateFile(ctx, FileMeta{Path: f.path})
		fw.Write(f.data)
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := b2.Finish(ctx, Header{Kind: KindFull})
	if err != nil {
		t.Fatal(err)
	}
	if st := b2.Stats(); st.BytesNew != 0 {
		t.Fatalf("re-run after crash stored %d new bytes, want 0 (%+v)", st.BytesNew, st)
	}
	checkFiles(t, reopen(t, mem, Runtime{}), m, files)
}

func TestConcurrentFileWritersShareDedup(t *testing.T) {
	ctx := context.Background()
	r := initRepo(t, storage.NewMem(), func() Options { o := testOptions(); o.Runtime.Parallel = 4; return o }())
	shared := randomData(30, 64*1024)
	b, _ := r.NewBackup(Header{Kind: KindFull, StartTime: time.Now()}, nil)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	files := make([]testFile, 8)
	for i := range 8 {
		files[i] = testFile{fmt.Sprintf("f%d", i), append(randomData(uint64(40+i), 592*1024), shared...)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fw, err := b.CreateFile(ctx, FileMeta{Path: files[i].path})
			if err == nil {
				err = write(fw, files[i].data)
			}
			if err == nil {
				err = fw.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	m, err := b.Finish(ctx, Header{Kind: KindFull})
	if err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.BlocksDeduplicated < 7*4 {
		t.Fatalf("8 files sharing 4 blocks: %+v, want at least 28 deduplicated", st)
	}
	checkFiles(t, r, m, files)
}

// A long backup writes index objects as it goes: after a crash before the
// final flush, reopening (without RebuildIndex) already knows most blocks.
func TestLongBackupIndexesAsItGoes(t *testing.T) {
	ctx := context.Background()
	mem, _ := memRepo(t)
	crashing := &faultBackend{Backend: mem, failSave: func(name string) bool { return strings.HasPrefix(name, "manifests/") }}
	r := reopen(t, crashing, Runtime{Parallel: 1, IndexEvery: 2})
	data := randomData(80, 5<<20)
	b, _ := r.NewBackup(Header{Kind: KindFull}, nil)
	fw, _ := b.CreateFile(ctx, FileMeta{Path: "big"})
	if err := write(fw, data); err != nil {
		t.Fatal(err)
	}
	// Killed here: no Close, no Finish.
	if n := len(objectNames(t, mem, "index/")); n < 2 {
		t.Fatalf("%d index objects after 4 full packs with IndexEvery 2, want 2", n)
	}
	r2 := reopen(t, mem, Runtime{})
	b2, _ := r2.NewBackup(Header{Kind: KindFull}, nil)
	fw2, _ := b2.CreateFile(ctx, FileMeta{Path: "big"})
	if err := errors.Join(write(fw2, data), fw2.Close()); err != nil {
		t.Fatal(err)
	}
	if st := b2.Stats(); st.BytesNew > 1<<20+64<<10 {
		t.Fatalf("re-run stored %d new bytes, want at most the one unindexed pack (%+v)", st.BytesNew, st)
	}
}

func TestManifestKeepsTheHeader(t *testing.T) {
	ctx := context.Background()
	_, r := memRepo(t)
	start := time.Date(2026, 11, 23, 10, 45, 0, 0, time.UTC)
	hdr := Header{Kind: KindFull, StartTime: start, StopTime: start.Add(time.Minute),
		StartLSN: 0x16B374800, StopLSN: 0x16B3749F8, Timeline: 3, SystemID: 7309123456789012345,
		PGVersion: 170002, DatabaseSize: 1 << 40, Label: "nightly"}
	b, err := r.NewBackup(hdr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.ID(), "20261123T104500Z-") {
		t.Fatalf("backup id %s does not start with the start time", b.ID())
	}
	if _, err := b.Finish(ctx, b.Header()); err != nil {
		t.Fatal(err)
	}
	m, err := r.LoadManifest(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	hdr.ID = b.ID()
	if !m.StartTime.Equal(hdr.StartTime) || !m.StopTime.Equal(hdr.StopTime) {
		t.Fatalf("times %v %v, want %v %v", m.StartTime, m.StopTime, hdr.StartTime, hdr.StopTime)
	}
	m.StartTime, m.StopTime = hdr.StartTime, hdr.StopTime
	if m.Header != hdr {
		t.Fatalf("manifest header %+v, want %+v", m.Header, hdr)
	}
	if got := m.StartLSN.String(); got != "1/6B374800" {
		t.Fatalf("LSN prints as %s, want 1/6B374800", got)
	}
	if ids, _ := r.ListBackups(ctx); len(ids) != 1 || ids[0] != b.ID() {
		t.Fatalf("ListBackups = %v", ids)
	}
}

// The block id is the associated data of its blob: a block read from
// another block's place fails authentication instead of returning the
// wrong content.
func TestSwappedBlocksAreDetected(t *testing.T) {
	r, a := swappedBlocks(t)
	if _, err := r.LoadBlock(context.Background(), a); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading block a from b's place: got %v, want ErrCorrupt", err)
	}
}

// swappedBlocks makes a repository with two blocks, a and b, whose index
// sends a to b's place; it returns the repository and a.
func swappedBlocks(t *testing.T) (*Repository, BlockID) {
	t.Helper()
	_, r := memRepo(t)
	m := writeBackup(t, r, KindFull, nil, []testFile{{"a", randomData(90, 16*1024)}, {"b", randomData(91, 16*1024)}})
	a, b := m.File("a").Blocks[0].ID, m.File("b").Blocks[0].ID
	x := r.idx.Load().over // the packs this process saved
	x.mu.Lock()
	if _, ok := x.blocks[b]; !ok {
		t.Fatal("the blocks just written are not in the in-memory part of the index")
	}
	x.blocks[a] = x.blocks[b]
	x.mu.Unlock()
	return r, a
}

// Backup ids sort by start time also within one second.
func TestBackupIDsSortWithinASecond(t *testing.T) {
	base := time.Date(2026, 11, 23, 15, 33, 5, 0, time.UTC)
	prev := ""
	for _, ms := range []int{0, 1, 9, 10, 250, 999} {
		id := NewBackupID(base.Add(time.Duration(ms) * time.Millisecond))
		if err := checkBackupID(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if prev != "" && id <= prev {
			t.Fatalf("id %s (at +%d ms) does not sort after %s", id, ms, prev)
		}
		prev = id
	}
}
