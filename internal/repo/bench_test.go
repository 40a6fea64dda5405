package repo

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

// BenchmarkWrite measures backup write throughput (hash, dedup check,
// compress, encrypt, pack) into an in-memory backend, with 128 KiB blocks.
// Every iteration writes new data, so nothing is deduplicated.
func BenchmarkWrite(b *testing.B) {
	const fileSize = 8 << 20
	kinds := []struct {
		name string
		gen  func(seed int) []byte
	}{
		{"compressible", func(seed int) []byte { return pageLike(seed, fileSize) }},
		{"incompressible", func(seed int) []byte { return randomData(uint64(seed), fileSize) }},
		{"randomvalues", func(seed int) []byte { return randomTable(uint64(seed), fileSize) }},
	}
	for _, k := range kinds {
		for _, comp := range []Compression{CompressZstd, CompressLZ4, CompressNone} {
			b.Run(fmt.Sprintf("%s/%s", k.name, comp), func(b *testing.B) {
				ctx := context.Background()
				opts := DefaultOptions()
				opts.KDF = fastKDF
				opts.Compression = comp
				opts.Runtime = Runtime{Parallel: 2}
				r := initRepo(b, storage.NewMem(), opts)
				data := k.gen(1)
				bk, err := r.NewBackup(Header{Kind: KindFull}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(fileSize)
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					// Make every block unique without regenerating the data.
					for off := 0; off < fileSize; off += opts.BlockSize {
						binary.LittleEndian.PutUint64(data[off:], uint64(i))
						binary.LittleEndian.PutUint64(data[off+8:], uint64(off))
					}
					fw, err := bk.CreateFile(ctx, FileMeta{Path: fmt.Sprint(i)})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := fw.Write(data); err != nil {
						b.Fatal(err)
					}
					if err := fw.Close(); err != nil {
						b.Fatal(err)
					}
				}
				if err := r.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				st := bk.Stats()
				b.ReportMetric(float64(st.BytesNew)/float64(st.BytesIn), "stored/in")
			})
		}
	}
}
