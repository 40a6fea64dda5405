package repo

import (
	"bytes"
	"context"
	"errors"
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
