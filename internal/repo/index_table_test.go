package repo

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// smallRuns makes tables spill to disk after runs of a few records, so
// that small tests go through the merge of sorted runs.
func smallRuns(t *testing.T, records int) {
	t.Helper()
	old := tableRunBytes
	tableRunBytes = records * recSize
	t.Cleanup(func() { tableRunBytes = old })
}

func TestTableFindsEveryEntryInMemoryAndOnDisk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		runRecs int
		entries int
	}{
		{"fits one run: kept in memory", 1 << 16, 5000},
		{"many runs: merged into a file of pages", 700, 5000},
		{"a run of one page per run", pageRecs, 3 * pageRecs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			smallRuns(t, tc.runRecs)
			rng := rand.New(rand.NewPCG(1, 2))
			b := newTableBuilder(t.TempDir())
			want := map[BlockID]packEntry{}
			for i := range tc.entries {
				var e packEntry
				for k := range e.ID {
					e.ID[k] = byte(rng.Uint32())
				}
				e.Offset, e.Length, e.RawLen = uint64(i)*1000+7, uint32(i+1), uint32(2*i+1)
				e.Comp, e.Sum, e.HasSum = compZstd, rng.Uint32(), i%3 != 0
				if !e.HasSum {
					e.Sum = 0
				}
				want[e.ID] = e
				if err := b.add(e, uint32(i%17)); err != nil {
					t.Fatal(err)
				}
				if i%10 == 0 { // a second copy of the block in another pack
					if err := b.add(e, uint32(i%17)); err != nil {
						t.Fatal(err)
					}
				}
			}
			tb, err := b.finish()
			if err != nil {
				t.Fatal(err)
			}
			defer tb.close()
			if onDisk := tb.f != nil; onDisk != (tc.entries > tc.runRecs) {
				t.Fatalf("table on disk %v with %d entries and runs of %d", onDisk, tc.entries, tc.runRecs)
			}
			if tb.len() != tc.entries {
				t.Fatalf("table has %d records, want %d (duplicates kept once)", tb.len(), tc.entries)
			}
			i := 0
			for id, e := range want {
				got, pack, ok := tb.lookup(id)
				if !ok || got != e || pack != uint32(int(e.Length-1)%17) {
					t.Fatalf("lookup %s: %+v pack %d found %v, want %+v", id.Short(), got, pack, ok, e)
				}
				absent := id
				absent[31] ^= 0xff
				if _, ok := want[absent]; !ok {
					if _, _, ok := tb.lookup(absent); ok {
						t.Fatalf("lookup of an absent id %s found an entry", absent.Short())
					}
				}
				i++
			}
			for _, edge := range []BlockID{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
				if _, ok := want[edge]; !ok {
					if _, _, ok := tb.lookup(edge); ok {
						t.Fatalf("lookup of %x found an entry", edge[:4])
					}
				}
			}
			if err := tb.readErr(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A repository whose index is a table on disk backs up, deduplicates
// and restores as one held in memory, across reopens and index reloads.
func TestRepositoryWithAnIndexTableOnDisk(t *testing.T) {
	smallRuns(t, 3)
	ctx := context.Background()
	mem, r := memRepo(t)
	var files []testFile
	for i := range 6 {
		files = append(files, testFile{fmt.Sprintf("f%d", i), randomData(uint64(100+i), 48*1024)})
	}
	m1 := writeBackup(t, r, KindFull, nil, files)
	r = reopen(t, mem, testOptions().Runtime)
	if x := r.idx.Load(); x.base.f == nil || x.base.len() != 18 {
		t.Fatalf("index of 18 blocks in runs of 3: on disk %v, %d records", x.base.f != nil, x.base.len())
	}
	checkFiles(t, r, m1, files)
	m2 := writeBackup(t, r, KindFull, nil, files)
	if st := r.idx.Load(); st.over.has(m2.Files[0].Blocks[0].ID) {
		t.Fatal("a block already in the table was stored again")
	}
	files = append(files, testFile{"new", randomData(7, 32*1024)})
	m3 := writeBackup(t, r, KindFull, nil, files)
	if _, err := r.Lock(ctx, false); err != nil { // reloads: only the new index object
		t.Fatal(err)
	}
	if x := r.idx.Load(); x.base.len() != 18 || !x.has(m3.File("new").Blocks[0].ID) {
		t.Fatalf("after a reload: %d records in the table, new block known %v", x.base.len(), x.has(m3.File("new").Blocks[0].ID))
	}
	r = reopen(t, mem, testOptions().Runtime)
	checkFiles(t, r, m2, files[:6])
	checkFiles(t, r, m3, files)
	var problems []Problem
	if err := r.Verify(ctx, "", func(p Problem) { problems = append(problems, p) }); err != nil || len(problems) > 0 {
		t.Fatalf("verify: %v %v", err, problems)
	}
}

// The table's files hold its records scrambled under a key of their own:
// no block id written to them appears in the file's bytes, and reads at
// any offset and length give back what was written.
func TestTableFilesAreScrambled(t *testing.T) {
	dir := t.TempDir()
	s, err := scrambledTempFile(dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := randomData(5, 200_003)
	for _, cut := range []int{7, 70_000, 100_003} { // writes that end off a 16-byte boundary
		if _, err := s.Write(data[:cut]); err != nil {
			t.Fatal(err)
		}
		data = data[cut:]
	}
	want := randomData(5, 200_003)
	if _, err := s.Write(data); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, len(want))
	if _, err := s.f.ReadAt(raw, 0); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, want[1000:1032]) {
		t.Fatal("the file holds what was written in the clear")
	}
	for _, r := range [][2]int{{0, 1}, {5, 33}, {16, 16}, {69_999, 70_010}, {199_000, 200_003}} {
		got := make([]byte, r[1]-r[0])
		if _, err := s.ReadAt(got, int64(r[0])); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[r[0]:r[1]]) {
			t.Fatalf("read of [%d, %d) differs from what was written", r[0], r[1])
		}
	}
}
