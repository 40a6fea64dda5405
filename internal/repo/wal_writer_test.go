package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

// compressible is n bytes of low entropy (4 bits a byte), like WAL
// records: zstd halves it.
func compressible(seed uint64, n int) []byte {
	b := randomData(seed, n)
	for i := range b {
		b[i] &= 0x0f
	}
	return b
}

// A segment written piece by piece, with tails stored on the way, reads
// back the same as one stored whole, and the two are the same object to
// the archive: pushing the other one again is no conflict.
func TestWALWriterStoresWhatPutWALStores(t *testing.T) {
	const segSize = 4 << 20
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		comp Compression
		data []byte
	}{
		{"zstd", CompressZstd, compressible(1, segSize)},
		{"zstd, incompressible", CompressZstd, randomData(2, segSize)},
		{"lz4", CompressLZ4, compressible(3, segSize)},
		{"none", CompressNone, compressible(4, segSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			o.Compression = tc.comp
			r := initRepo(t, storage.NewMem(), o)
			seg := "000000010000000000000003"
			w := r.NewWALWriter()
			defer w.Close()
			written := 0
			for _, upTo := range []int{100, 8192, 300_000, 1 << 20, 3<<20 + 17, segSize} {
				if _, err := w.Write(tc.data[written:upTo]); err != nil {
					t.Fatal(err)
				}
				written = upTo
				if upTo == segSize {
					break
				}
				if err := w.PutWALTail(ctx, seg, segSize, tc.data[:upTo]); err != nil {
					t.Fatalf("tail at %d: %v", upTo, err)
				}
				got, err := r.GetWALTail(ctx, seg)
				if err != nil {
					t.Fatalf("tail at %d: %v", upTo, err)
				}
				if len(got) != segSize || !bytes.Equal(got[:upTo], tc.data[:upTo]) || !allZero(got[upTo:]) {
					t.Fatalf("tail at %d reads back as something else (%d bytes)", upTo, len(got))
				}
			}
			if err := w.PutWAL(ctx, seg, tc.data); err != nil {
				t.Fatal(err)
			}
			if tc.comp == CompressZstd {
				fi, err := r.be.Stat(ctx, "wal/00000001/"+seg)
				if err != nil {
					t.Fatal(err)
				}
				compressed := fi.Size < segSize*3/5
				if compressed != (tc.name == "zstd") {
					t.Fatalf("stored %d bytes of %d: compressed %v, want %v", fi.Size, segSize, compressed, !compressed)
				}
			}
			got, err := r.GetWAL(ctx, seg)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("segment written piece by piece reads back as %d bytes (%v), want its %d", len(got), err, len(tc.data))
			}
			if err := r.PutWAL(ctx, seg, tc.data); err != nil {
				t.Fatalf("the same segment pushed whole after the writer: %v", err)
			}
			other := append([]byte(nil), tc.data...)
			other[segSize/2] ^= 0xff
			if err := r.PutWAL(ctx, seg, other); !errors.Is(err, ErrWALConflict) {
				t.Fatalf("other content under the same name: %v, want ErrWALConflict", err)
			}
		})
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// The writer refuses data other than what it was given, and a tail
// longer than the segment, storing nothing.
func TestWALWriterRefusesDataItWasNotGiven(t *testing.T) {
	ctx := context.Background()
	_, r := memRepo(t)
	data := compressible(5, 1<<20)
	w := r.NewWALWriter()
	defer w.Close()
	if _, err := w.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	seg := "000000010000000000000004"
	if err := w.PutWAL(ctx, seg, data); err == nil || !strings.Contains(err.Error(), "1048576 bytes given, 1000 written") {
		t.Fatalf("PutWAL with more bytes than written: %v", err)
	}
	if err := w.PutWALTail(ctx, seg, 512, data[:1000]); err == nil || !strings.Contains(err.Error(), "1000 bytes of a 512-byte segment") {
		t.Fatalf("a tail longer than its segment: %v", err)
	}
	if names, err := r.ListWAL(ctx, ""); err != nil || len(names) > 0 {
		t.Fatalf("stored %v (%v), want nothing", names, err)
	}
}

// A large object is zstd-compressed as a stream into chunks, or, when
// its output reaches the plaintext's size, stored as it is: a random
// 16 MiB segment is stored at its size plus the seal, a compressible one
// smaller, and both read back.
func TestLargeObjectsAreStoredCompressedOrAsTheyAre(t *testing.T) {
	const segSize = 16 << 20
	ctx := context.Background()
	be := storage.NewMem()
	r := initRepo(t, be, testOptions())
	for i, tc := range []struct {
		name         string
		data         []byte
		compressed   bool
		maxOverheadB int64
	}{
		{"random", randomData(7, segSize), false, 256},
		{"compressible", compressible(8, segSize), true, 0},
	} {
		name := fmt.Sprintf("00000001000000000000000%d", i+1)
		if err := r.PutWAL(ctx, name, tc.data); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		obj, _ := walObjectName(name)
		st, err := be.Stat(ctx, obj)
		if err != nil {
			t.Fatal(err)
		}
		if tc.compressed && st.Size >= segSize*3/4 {
			t.Errorf("%s: stored %d bytes of %d, want it compressed", tc.name, st.Size, segSize)
		}
		if !tc.compressed && (st.Size < segSize || st.Size > segSize+tc.maxOverheadB) {
			t.Errorf("%s: stored %d bytes, want the %d plaintext bytes and at most %d of header and seal", tc.name, st.Size, segSize, tc.maxOverheadB)
		}
		got, err := r.GetWAL(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(got, tc.data) {
			t.Fatalf("%s: read back differs", tc.name)
		}
	}
}

func TestChunkWriterStopsAtItsBound(t *testing.T) {
	w := &chunkWriter{max: chunkSize + 10}
	if _, err := w.Write(bytes.Repeat([]byte{1}, chunkSize-3)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte{2}, 13)); err != nil {
		t.Fatal(err)
	}
	if len(w.chunks) != 2 || len(w.chunks[0]) != chunkSize || len(w.chunks[1]) != 10 || w.n != chunkSize+10 {
		t.Fatalf("chunks of %d and %d bytes, n %d", len(w.chunks[0]), len(w.chunks[1]), w.n)
	}
	if w.chunks[0][chunkSize-1] != 2 || w.chunks[1][0] != 2 {
		t.Fatal("bytes out of order across the chunk boundary")
	}
	if _, err := w.Write([]byte{3}); !errors.Is(err, errOutgrown) {
		t.Fatalf("write past the bound: %v, want errOutgrown", err)
	}
}
