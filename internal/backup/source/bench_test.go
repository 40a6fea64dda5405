package source

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkPageChecksum(b *testing.B) {
	p := makePage(0x1000, 3, 7)
	b.SetBytes(PageSize)
	for b.Loop() {
		PageChecksum(p, 3)
	}
}

// BenchmarkReadFileVerify measures reading a cached 64 MiB relation file
// with checksum validation, i.e. the CPU cost per byte of a full backup.
func BenchmarkReadFileVerify(b *testing.B) {
	dir := b.TempDir()
	const pages = 8192
	f, err := os.Create(filepath.Join(dir, "16384"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range pages {
		if _, err := f.Write(makePage(0x100, uint32(i), byte(i))); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	if err := os.MkdirAll(filepath.Join(dir, "base", "5"), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "16384"), filepath.Join(dir, "base", "5", "16384")); err != nil {
		b.Fatal(err)
	}
	r := FileReader{Tree: testTree(b, dir), ChunkSize: 1 << 20, VerifyChecksums: true, StartLSN: 0x1000}
	e := Entry{Path: "base/5/16384", Mode: 0o600, Size: pages * PageSize}
	b.SetBytes(e.Size)
	for b.Loop() {
		res, err := r.Read(context.Background(), e, Plan{Action: ActionReadAll}, func(Chunk) error { return nil })
		if err != nil || len(res.BadPages) != 0 {
			b.Fatalf("read: %v, bad pages %v", err, res.BadPages)
		}
	}
}
