package restore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

// TestWritePlanOverlaysIncrementalPieces restores an incremental backup
// whose files keep pieces of older blocks around changed pages, share
// blocks within and across files, and are cut into many small windows,
// and compares every byte with what was backed up. Large aligned files go
// through O_DIRECT, the others through the page cache.
func TestWritePlanOverlaysIncrementalPieces(t *testing.T) {
	defer func(old int64) { windowBytes = old }(windowBytes)
	windowBytes = 96 << 10 // many windows, cut inside files and blocks

	const page = 8192
	rng := rand.New(rand.NewPCG(1, 2))
	pages := func(n int) []byte {
		b := make([]byte, n*page)
		for i := range b {
			b[i] = byte(rng.IntN(7)) // compressible, but not constant
		}
		return b
	}
	big := pages(160)                                          // 1.25 MiB: O_DIRECT
	copy(big[64*page:80*page], big[0:16*page])                 // a 128 KiB block twice in one file
	odd := append(pages(40), []byte("tail of an odd size")...) // page cache
	twin := append([]byte(nil), big[:48*page]...)              // shares blocks with big
	full := map[string][]byte{"base/1/big": big, "base/1/odd": odd, "base/1/twin": twin, "base/1/small": []byte("small"), "base/1/empty": nil}

	r := testrepo.Local(t, packs4MiB)
	ctx := context.Background()
	write := func(prev *repo.Manifest, files map[string][]byte, changed map[string][][2]int) *repo.Manifest {
		t.Helper()
		b := testrepo.Begin(t, r, prev)
		for _, path := range []string{"base/1/big", "base/1/odd", "base/1/twin", "base/1/small", "base/1/empty"} {
			data := files[path]
			fw, err := b.CreateFile(ctx, repo.FileMeta{Path: path, Mode: 0o600, MTime: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			pos := 0
			for _, c := range changed[path] { // [from, to) pages rewritten
				if err := fw.Skip(int64(c[0]*page - pos)); err != nil {
					t.Fatal(err)
				}
				if _, err := fw.Write(data[c[0]*page : c[1]*page]); err != nil {
					t.Fatal(err)
				}
				pos = c[1] * page
			}
			if prev != nil && changed[path] != nil {
				if err := fw.Skip(int64(len(data) - pos)); err != nil {
					t.Fatal(err)
				}
			} else if _, err := fw.Write(data[pos:]); err != nil {
				t.Fatal(err)
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return testrepo.Finish(t, b)
	}
	m := write(nil, full, nil)

	// Two incrementals: changed pages here and there, one page changed
	// twice, odd's tail unchanged.
	changes := []map[string][][2]int{
		{"base/1/big": {{1, 2}, {5, 7}, {20, 21}, {70, 71}, {159, 160}}, "base/1/odd": {{0, 1}, {30, 31}}},
		{"base/1/big": {{1, 2}, {3, 4}, {16, 17}, {100, 116}}, "base/1/twin": {{47, 48}}},
		// Blocks of the last two backups now overlap around page 105.
		{"base/1/big": {{105, 106}}},
	}
	for _, ch := range changes {
		for path, ranges := range ch {
			for _, c := range ranges {
				copy(full[path][c[0]*page:c[1]*page], pages(c[1]-c[0]))
			}
		}
		m = write(m, full, ch)
	}

	// Small windows cut the files inside blocks; large ones hold several
	// files, and both copies of a block.
	for _, size := range []int64{96 << 10, 4 << 20} {
		windowBytes = size
		dir := filepath.Join(scratch(t), "data")
		w := &writer{r: r, m: m, dir: dir, acct: testcluster.Account(t)}
		rt, err := openRoots(dir, &layout{}, w.acct)
		if err != nil {
			t.Fatal(err)
		}
		defer rt.close()
		w.rt = rt
		for _, d := range []string{"base", "base/1"} {
			if err := w.mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		p, err := w.planFull(m.Files)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("windows of %d bytes: %d", size, len(p.windows))
		if err := w.writePlan(ctx, p, 2); err != nil {
			t.Fatal(err)
		}
		for path, want := range full {
			got, err := os.ReadFile(filepath.Join(dir, path))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("windows of %d bytes: %s: restored %d bytes that differ from the %d backed up", size, path, len(got), len(want))
			}
		}
		if got, want := w.written.Load(), int64(len(big)+len(odd)+len(twin)+len("small")); got != want {
			t.Errorf("windows of %d bytes: wrote %d bytes, want %d", size, got, want)
		}
	}
}

// TestBlockReaderDecodesInPlace opens blocks of every compression (and
// the XChaCha20 cipher) straight into a caller's buffer and checks that
// the bytes after each block, which zstd's fast copies may scribble on,
// are as they were.
func TestBlockReaderDecodesInPlace(t *testing.T) {
	for _, c := range []struct {
		comp   repo.Compression
		cipher repo.Cipher
	}{{repo.CompressZstd, repo.AES256GCM}, {repo.CompressLZ4, repo.AES256GCM}, {repo.CompressNone, repo.XChaCha20Poly1305}} {
		t.Run(string(c.comp), func(t *testing.T) {
			be, err := storage.NewLocal(filepath.Join(scratch(t), "repo"))
			if err != nil {
				t.Fatal(err)
			}
			r := testrepo.Init(t, be, testrepo.Passphrase, func(o *repo.Options) { o.Compression, o.Cipher = c.comp, c.cipher })
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(3, 4))
			data := make([]byte, 3*128<<10+8192)
			for i := range data {
				data[i] = byte(rng.IntN(5))
			}
			if c.comp == repo.CompressNone {
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
			}
			m := testrepo.Write(t, r, nil, testrepo.File{Path: "f", Data: data})
			refs := m.File("f").Blocks
			// Each block at its place in buf, with the slack (over the
			// next block's start, or past the end); 0xA5 everywhere
			// else. Odd blocks are opened first, so the even ones'
			// slack lies over blocks already in place.
			buf := make([]byte, len(data)+repo.BlockSlack)
			for i := range buf {
				buf[i] = 0xA5
			}
			var reqs []repo.BlockRequest
			var offs []int64
			for _, parity := range []int{1, 0} {
				for i, ref := range refs {
					if i%2 != parity {
						continue
					}
					loc, err := r.LocateBlock(ref.ID)
					if err != nil {
						t.Fatal(err)
					}
					reqs = append(reqs, repo.BlockRequest{ID: ref.ID, Loc: loc, Dst: buf[ref.Offset:ref.Offset:min(ref.Offset+loc.RawLen()+repo.BlockSlack, int64(len(buf)))]})
					offs = append(offs, ref.Offset)
				}
			}
			odd := len(refs) / 2
			br := r.NewBlockReader()
			var lb repo.LoadedBlocks
			if err := r.LoadBlocks(ctx, reqs, &lb); err != nil {
				t.Fatal(err)
			}
			for _, pass := range [][2]int{{0, odd}, {odd, len(reqs)}} {
				err := br.OpenRange(ctx, &lb, pass[0], pass[1], func(i int, got []byte) error {
					if i < pass[0] || i >= pass[1] {
						t.Errorf("request %d opened in pass %v", i, pass)
					}
					if &got[0] != &buf[offs[i]] {
						t.Errorf("request %d not decoded in place", i)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(buf[:len(data)], data) {
				t.Errorf("decoded blocks differ from the data written")
			}
			for i, v := range buf[len(data):] {
				if v != 0xA5 {
					t.Fatalf("byte %d after the last block changed to %#x", i, v)
				}
			}
		})
	}
}
