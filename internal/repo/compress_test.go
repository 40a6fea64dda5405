package repo

import (
	"bytes"
	"testing"
)

// A block that compresses poorly goes through the fastest encoder, one
// that compresses well through the repository's level, and both read
// back as they were.
func TestPoorlyCompressingBlocksTakeTheFastestEncoder(t *testing.T) {
	cp, err := newCompressor(CompressZstd, 3, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		fast bool
	}{
		{"pages of random values", randomTable(7, 128<<10), true},
		{"random bytes", randomData(8, 128<<10), true},
		{"pages of repeated tuples", pageLike(3, 128<<10), false},
		{"a block smaller than two probes", randomTable(9, probeSize), false},
	} {
		scratch := cp.getScratch(len(c.data))
		if got := cp.poorlyCompressing(*scratch, c.data); got != c.fast {
			t.Errorf("%s: poorly compressing = %v, want %v", c.name, got, c.fast)
		}
		stored, code := cp.compressBlock(*scratch, c.data)
		back, err := cp.decompress(append([]byte(nil), stored...), code, len(c.data))
		if err != nil || !bytes.Equal(back, c.data) {
			t.Errorf("%s: stored as code %d (%d of %d bytes) reads back wrong: %v", c.name, code, len(stored), len(c.data), err)
		}
		cp.putScratch(scratch)
	}
	if one, err := newCompressor(CompressZstd, 1, 128<<10); err != nil || one.fast != nil {
		t.Fatalf("level 1 is already the fastest: fast encoder %v, err %v", one.fast, err)
	}
}
