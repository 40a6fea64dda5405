// Package storagetest is the conformance suite every storage.Backend must
// pass. It owns no backend and must never depend on a particular one: a
// backend's own test calls Run with a constructor.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

// LargeObjectSize is big enough that S3 clients switch to multipart upload.
const LargeObjectSize = 20 << 20

// Run checks the storage.Backend contract. newBackend must return an empty
// backend, independent of the ones it returned before (for shared servers: a
// fresh prefix), and register its own cleanup on t.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	t.Run("saved object loads back byte for byte", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(1, 100_000)
		save(t, b, "obj", data)
		if got := load(t, b, "obj", 0, 0); !bytes.Equal(got, data) {
			t.Fatalf("loaded %d bytes differing from the %d saved", len(got), len(data))
		}
		fi, err := b.Stat(context.Background(), "obj")
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if fi.Name != "obj" || fi.Size != int64(len(data)) || fi.ModTime.IsZero() {
			t.Fatalf("stat = %+v, want name obj, size %d, a modification time", fi, len(data))
		}
	})

	t.Run("save of unknown size stores the whole input", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(5, 300_000)
		// A reader that is neither a Seeker nor sized, like a pipe.
		if err := b.Save(context.Background(), "unsized", io.MultiReader(bytes.NewReader(data)), -1); err != nil {
			t.Fatalf("save with size -1: %v", err)
		}
		if got := load(t, b, "unsized", 0, 0); !bytes.Equal(got, data) {
			t.Fatalf("loaded %d bytes, not the %d saved", len(got), len(data))
		}
	})

	t.Run("ranged loads return exactly the requested bytes", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(2, 1000)
		save(t, b, "ranged", data)
		cases := []struct {
			name           string
			offset, length int64
			want           []byte
		}{
			{"whole object with length 0", 0, 0, data},
			{"whole object with negative length", 0, -1, data},
			{"first byte", 0, 1, data[:1]},
			{"middle slice", 100, 250, data[100:350]},
			{"from an offset to the end", 990, 0, data[990:]},
			{"last byte", 999, 1, data[999:]},
			{"length past the end is cut at the end", 900, 500, data[900:]},
			{"exact length of the object", 0, 1000, data},
			{"offset at the end yields nothing", 1000, 0, nil},
			{"offset at the end with a length yields nothing", 1000, 10, nil},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got := load(t, b, "ranged", c.offset, c.length)
				if !bytes.Equal(got, c.want) {
					t.Fatalf("load(%d, %d) returned %d bytes, want %d (content differs: %v)",
						c.offset, c.length, len(got), len(c.want), len(got) == len(c.want))
				}
			})
		}
	})

	t.Run("offset beyond the end is an error other than not-exist", func(t *testing.T) {
		b := newBackend(t)
		save(t, b, "short", []byte("0123456789"))
		rc, err := b.Load(context.Background(), "short", 11, 0)
		if err == nil {
			data, rerr := io.ReadAll(rc)
			rc.Close()
			if rerr == nil {
				t.Fatalf("load at offset 11 of a 10-byte object returned %q and no error", data)
			}
			err = rerr
		}
		if storage.IsNotExist(err) {
			t.Fatalf("load past the end: %v is a not-exist error; the object exists", err)
		}
	})

	t.Run("missing object is not-exist for load, stat and remove", func(t *testing.T) {
		b := newBackend(t)
		ctx := context.Background()
		save(t, b, "present/x", []byte("x"))
		for _, name := range []string{"absent", "present/absent", "present", "no/such/dir/obj"} {
			if rc, err := b.Load(ctx, name, 0, 0); !storage.IsNotExist(err) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("load %q: err = %v, want not-exist", name, err)
			}
			if _, err := b.Stat(ctx, name); !storage.IsNotExist(err) {
				t.Errorf("stat %q: err = %v, want not-exist", name, err)
			}
			if err := b.Remove(ctx, name); !storage.IsNotExist(err) {
				t.Errorf("remove %q: err = %v, want not-exist", name, err)
			}
		}
	})

	t.Run("save replaces an existing object", func(t *testing.T) {
		b := newBackend(t)
		save(t, b, "replaced", bytes.Repeat([]byte("a"), 5000))
		save(t, b, "replaced", []byte("short"))
		if got := load(t, b, "replaced", 0, 0); string(got) != "short" {
			t.Fatalf("after overwrite loaded %d bytes %.20q, want %q", len(got), got, "short")
		}
		if n := len(listNames(t, b, "replaced")); n != 1 {
			t.Fatalf("list shows %d objects named replaced, want 1", n)
		}
	})

	t.Run("nested names round trip and list under their prefix", func(t *testing.T) {
		b := newBackend(t)
		names := []string{"a/b/c/d", "a/b/e", "a/f", "g/h/i/j/k/l"}
		for i, n := range names {
			save(t, b, n, []byte(fmt.Sprintf("object %d", i)))
		}
		for i, n := range names {
			if got := string(load(t, b, n, 0, 0)); got != fmt.Sprintf("object %d", i) {
				t.Errorf("load %s = %q", n, got)
			}
		}
		wantNames(t, b, "a/b/", []string{"a/b/c/d", "a/b/e"})
		wantNames(t, b, "g/", []string{"g/h/i/j/k/l"})
	})

	t.Run("empty object saves, stats, lists and loads", func(t *testing.T) {
		b := newBackend(t)
		save(t, b, "empty", nil)
		fi, err := b.Stat(context.Background(), "empty")
		if err != nil || fi.Size != 0 {
			t.Fatalf("stat empty = %+v, %v; want size 0", fi, err)
		}
		if got := load(t, b, "empty", 0, 0); len(got) != 0 {
			t.Fatalf("load empty returned %d bytes", len(got))
		}
		if got := load(t, b, "empty", 0, 10); len(got) != 0 {
			t.Fatalf("ranged load of empty returned %d bytes", len(got))
		}
		wantNames(t, b, "", []string{"empty"})
	})

	t.Run("large object round trips including ranges across part boundaries", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(3, LargeObjectSize)
		save(t, b, "large/obj", data)
		got := load(t, b, "large/obj", 0, 0)
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("large object: loaded %d bytes with a different checksum than the %d saved", len(got), len(data))
		}
		const boundary = 16 << 20 // minio-go's smallest part size
		if got := load(t, b, "large/obj", boundary-100, 200); !bytes.Equal(got, data[boundary-100:boundary+100]) {
			t.Fatalf("range across %d returned %d bytes, not the saved ones", boundary, len(got))
		}
	})

	t.Run("concurrent saves of different names all land", func(t *testing.T) {
		b := newBackend(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := randomBytes(uint64(10+i), 50_000+i)
				errs[i] = b.Save(context.Background(), fmt.Sprintf("conc/%d", i), bytes.NewReader(data), int64(len(data)))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("save conc/%d: %v", i, err)
			}
		}
		for i := range n {
			want := randomBytes(uint64(10+i), 50_000+i)
			if got := load(t, b, fmt.Sprintf("conc/%d", i), 0, 0); !bytes.Equal(got, want) {
				t.Errorf("conc/%d: loaded %d bytes, not the %d saved", i, len(got), len(want))
			}
		}
	})

	t.Run("list returns exactly the names under a prefix", func(t *testing.T) {
		b := newBackend(t)
		for _, n := range []string{"data/1", "data/2", "datum", "other/1", "data/sub/3"} {
			save(t, b, n, []byte(n))
		}
		cases := []struct {
			prefix string
			want   []string
		}{
			{"", []string{"data/1", "data/2", "data/sub/3", "datum", "other/1"}},
			{"data/", []string{"data/1", "data/2", "data/sub/3"}},
			{"dat", []string{"data/1", "data/2", "data/sub/3", "datum"}},
			{"data/s", []string{"data/sub/3"}},
			{"other/1", []string{"other/1"}},
			{"nothing/", nil},
			{"data/9", nil},
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("prefix %q", c.prefix), func(t *testing.T) {
				wantNames(t, b, c.prefix, c.want)
			})
		}
		var sizes []int64
		err := b.List(context.Background(), "other/", func(fi storage.FileInfo) error {
			sizes = append(sizes, fi.Size)
			return nil
		})
		if err != nil || !slices.Equal(sizes, []int64{int64(len("other/1"))}) {
			t.Fatalf("list other/ sizes = %v, %v; want [%d]", sizes, err, len("other/1"))
		}
	})

	t.Run("an error from the list callback stops the listing and is returned", func(t *testing.T) {
		b := newBackend(t)
		for i := range 5 {
			save(t, b, fmt.Sprintf("stop/%d", i), []byte("x"))
		}
		stop := errors.New("enough")
		calls := 0
		err := b.List(context.Background(), "stop/", func(storage.FileInfo) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("list returned %v after %d calls; want the callback's error after 1 call", err, calls)
		}
	})

	t.Run("removed object is gone from load, stat and list", func(t *testing.T) {
		b := newBackend(t)
		ctx := context.Background()
		save(t, b, "rm/a", []byte("a"))
		save(t, b, "rm/b", []byte("b"))
		if err := b.Remove(ctx, "rm/a"); err != nil {
			t.Fatalf("remove: %v", err)
		}
		if _, err := b.Stat(ctx, "rm/a"); !storage.IsNotExist(err) {
			t.Fatalf("stat after remove: %v, want not-exist", err)
		}
		if err := b.Remove(ctx, "rm/a"); !storage.IsNotExist(err) {
			t.Fatalf("second remove: %v, want not-exist", err)
		}
		wantNames(t, b, "rm/", []string{"rm/b"})
	})

	t.Run("failed or short input leaves no object", func(t *testing.T) {
		b := newBackend(t)
		ctx := context.Background()
		broken := io.MultiReader(bytes.NewReader(make([]byte, 1000)), errReader{errors.New("disk on fire")})
		if err := b.Save(ctx, "broken", broken, 2000); err == nil {
			t.Fatalf("save from a failing reader succeeded")
		}
		if err := b.Save(ctx, "short", bytes.NewReader(make([]byte, 10)), 20); err == nil {
			t.Fatalf("save of 10 bytes announced as 20 succeeded")
		}
		for _, n := range []string{"broken", "short"} {
			if _, err := b.Stat(ctx, n); !storage.IsNotExist(err) {
				t.Errorf("stat %s after failed save: %v, want not-exist", n, err)
			}
		}
		wantNames(t, b, "", nil)
	})

	t.Run("cancelled context fails every operation", func(t *testing.T) {
		b := newBackend(t)
		save(t, b, "c/obj", []byte("data"))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		checks := map[string]error{
			"save": b.Save(ctx, "c/new", bytes.NewReader([]byte("x")), 1),
			"stat": func() error { _, err := b.Stat(ctx, "c/obj"); return err }(),
			"list": b.List(ctx, "c/", func(storage.FileInfo) error { return nil }),
			"load": func() error {
				rc, err := b.Load(ctx, "c/obj", 0, 0)
				if err == nil {
					_, err = io.ReadAll(rc)
					rc.Close()
				}
				return err
			}(),
			"remove": b.Remove(ctx, "c/obj"),
		}
		for op, err := range checks {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", op, err)
			}
		}
		if _, err := b.Stat(context.Background(), "c/obj"); err != nil {
			t.Errorf("object removed by a cancelled remove: %v", err)
		}
		if _, err := b.Stat(context.Background(), "c/new"); !storage.IsNotExist(err) {
			t.Errorf("object saved by a cancelled save: %v", err)
		}
	})

	// A remote store may commit a request whose client was cancelled after
	// the last byte went out, so the promise is atomicity, not absence.
	t.Run("cancellation during save leaves nothing or the whole object", func(t *testing.T) {
		b := newBackend(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		data := randomBytes(4, 1<<20)
		r := &cancelAfter{r: bytes.NewReader(data), after: 64 << 10, cancel: cancel}
		err := b.Save(ctx, "interrupted", r, int64(len(data)))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("save cancelled midway: err = %v, want context.Canceled", err)
		}
		_, err = b.Stat(context.Background(), "interrupted")
		switch {
		case storage.IsNotExist(err):
		case err != nil:
			t.Fatalf("stat after cancelled save: %v", err)
		default:
			if got := load(t, b, "interrupted", 0, 0); !bytes.Equal(got, data) {
				t.Fatalf("cancelled save left a partial object of %d bytes (of %d)", len(got), len(data))
			}
		}
		wantNames(t, b, "", namesIf(err == nil, "interrupted"))
	})

	t.Run("location names the store", func(t *testing.T) {
		if loc := newBackend(t).Location(); loc == "" {
			t.Fatalf("Location() is empty")
		}
	})
}

func save(t *testing.T, b storage.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Save(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("save %s (%d bytes): %v", name, len(data), err)
	}
}

func load(t *testing.T, b storage.Backend, name string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Load(context.Background(), name, offset, length)
	if err != nil {
		t.Fatalf("load %s [%d, +%d]: %v", name, offset, length, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s [%d, +%d]: %v", name, offset, length, err)
	}
	return data
}

func listNames(t *testing.T, b storage.Backend, prefix string) []string {
	t.Helper()
	var names []string
	err := b.List(context.Background(), prefix, func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	slices.Sort(names)
	return names
}

func wantNames(t *testing.T, b storage.Backend, prefix string, want []string) {
	t.Helper()
	got := listNames(t, b, prefix)
	if !slices.Equal(got, want) {
		t.Fatalf("list %q = %q, want %q", prefix, got, want)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	data := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	return data
}

func namesIf(present bool, name string) []string {
	if present {
		return []string{name}
	}
	return nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// cancelAfter cancels its context once more than after bytes were read, to
// interrupt a Save midway.
type cancelAfter struct {
	r      io.Reader
	after  int
	read   int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.read > c.after {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}
