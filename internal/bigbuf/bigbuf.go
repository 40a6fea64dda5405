// Package bigbuf keeps large byte buffers outside the Go heap.
//
// A restore holds its window buffers and the stored bytes of the next
// windows' blocks for its whole run: 20 to 25 MiB on four channels. The
// backup, restore and verify commands run under a 32 MiB soft memory
// limit (so that the process stays under 64 MiB of RSS), and with those
// buffers in the heap the live heap sat at the goal that limit leaves:
// the collector ran back to back, about 1,000 times in a restore of
// 2.7 GiB on four channels, for half of the restore's user time. Memory
// mapped from the kernel is not in the heap: the collector neither scans
// nor counts it, so its goal follows the small objects alone. It still
// counts in RSS, the figure the memory target is about.
//
// Only bytes go into these buffers, never Go pointers (the collector
// would not see them), and a buffer is freed explicitly, once nothing
// refers to it any more: a slice of a freed buffer faults.
package bigbuf

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Buf is a buffer mapped from the kernel; its zero value holds nothing.
// Its start is page-aligned, which O_DIRECT asks for.
type Buf struct {
	mem []byte // the whole mapping
}

// Grow returns a slice of length n with all of the mapping as its
// capacity (at least n), keeping the mapping when it is large enough and
// mapping a new one otherwise. The bytes are not kept across a remapping,
// and are zero only in a new mapping.
func (b *Buf) Grow(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("bigbuf: negative size %d", n)
	}
	if len(b.mem) >= n {
		return b.mem[:n:len(b.mem)], nil
	}
	// Rounded up to whole pages, and at least an eighth over the
	// previous size, so that a run of slowly growing requests maps a few
	// times, not each time.
	page := os.Getpagesize()
	size := (max(n, len(b.mem)+len(b.mem)/8) + page - 1) &^ (page - 1)
	b.Free()
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map a buffer of %d bytes: %w", size, err)
	}
	b.mem = mem
	return mem[:n:len(mem)], nil
}

// Free unmaps the buffer. Slices of it must not be used afterwards.
func (b *Buf) Free() {
	if b.mem != nil {
		// Munmap fails only for an address that was never mapped.
		_ = unix.Munmap(b.mem)
		b.mem = nil
	}
}
