package bigbuf

import (
	"os"
	"runtime"
	"testing"
	"unsafe"
)

func TestGrowKeepsOrRemapsAndStaysOutOfTheHeap(t *testing.T) {
	var b Buf
	defer b.Free()
	page := os.Getpagesize()
	s, err := b.Grow(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 10 || cap(s) != page {
		t.Fatalf("Grow(10): len %d cap %d, want 10 and one page (%d)", len(s), cap(s), page)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(s)))%uintptr(page) != 0 {
		t.Fatalf("buffer at %p is not page-aligned", unsafe.SliceData(s))
	}
	s[9] = 7
	same, err := b.Grow(page)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(same) != unsafe.SliceData(s) || same[9] != 7 {
		t.Fatalf("Grow within the mapping remapped it")
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	big, err := b.Grow(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(big); i += page {
		big[i] = 1
	}
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapSys) - int64(before.HeapSys); grown > 8<<20 {
		t.Fatalf("64 MiB from Grow grew the Go heap by %d bytes", grown)
	}
	if len(b.mem) < 64<<20 {
		t.Fatalf("mapping of %d bytes after Grow(64 MiB)", len(b.mem))
	}

	// A slowly growing request maps an eighth more each time.
	big, err = b.Grow(len(b.mem) + 1)
	if err != nil {
		t.Fatal(err)
	}
	if cap(big) < (64<<20)+(8<<20) {
		t.Fatalf("growing by one byte mapped %d bytes, want at least an eighth more than 64 MiB", cap(big))
	}
	if _, err := b.Grow(-1); err == nil {
		t.Fatal("Grow(-1) did not fail")
	}
	b.Free()
	if b.mem != nil {
		t.Fatalf("mapping of %d bytes after Free", len(b.mem))
	}
	b.Free() // twice is harmless
}
