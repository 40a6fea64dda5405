package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster/objects"
)

const testPass = "correct horse battery staple"

// fastKDF keeps tests quick; the format is the same as with real parameters.
var fastKDF = KDFParams{KDF: Argon2id, Time: 1, Memory: 64, Threads: 1}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testOptions() Options {
	o := DefaultOptions()
	o.KDF = fastKDF
	o.BlockSize = 16 * 1024
	o.PackSize = 1 << 20
	o.Runtime = Runtime{Parallel: 1, Host: "db1", PID: 4242}
	return o
}

func initRepo(t testing.TB, be storage.Backend, opts Options) *Repository {
	t.Helper()
	r, err := Init(context.Background(), be, Passphrase(testPass), opts)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	return r
}

// memRepo is a repository with the test options in a new in-memory
// backend, returned with it.
func memRepo(t testing.TB) (*storage.Mem, *Repository) {
	t.Helper()
	mem := storage.NewMem()
	return mem, initRepo(t, mem, testOptions())
}

func reopen(t testing.TB, be storage.Backend, rt Runtime) *Repository {
	t.Helper()
	r, err := Open(context.Background(), be, Passphrase(testPass), rt)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return r
}

func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// pageLike is compressible: repeated text with a page number.
func pageLike(seed, n int) []byte {
	var buf bytes.Buffer
	for buf.Len() < n {
		buf.WriteString("tuple ")
		buf.WriteString(strings.Repeat(string(rune('a'+seed%26)), 20))
		buf.WriteByte(byte(buf.Len()))
	}
	return buf.Bytes()[:n]
}

type testFile struct {
	path string
	data []byte
}

func writeBackup(t testing.TB, r *Repository, kind Kind, prev *Manifest, files []testFile) *Manifest {
	t.Helper()
	ctx := context.Background()
	b, err := r.NewBackup(Header{Kind: kind, StartTime: time.Now()}, prev)
	if err != nil {
		t.Fatalf("new backup: %v", err)
	}
	for _, f := range files {
		fw, err := b.CreateFile(ctx, FileMeta{Path: f.path, Mode: 0o600})
		if err != nil {
			t.Fatalf("create %s: %v", f.path, err)
		}
		if _, err := fw.Write(f.data); err != nil {
			t.Fatalf("write %s: %v", f.path, err)
		}
		if err := fw.Close(); err != nil {
			t.Fatalf("close %s: %v", f.path, err)
		}
	}
	hdr := b.Header()
	hdr.StopTime = time.Now()
	m, err := b.Finish(ctx, hdr)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	return m
}

func readAll(t testing.TB, r *Repository, m *Manifest, path string) []byte {
	t.Helper()
	rc, err := r.ReadFile(context.Background(), m, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

func checkFiles(t testing.TB, r *Repository, m *Manifest, files []testFile) {
	t.Helper()
	for _, f := range files {
		if got := readAll(t, r, m, f.path); !bytes.Equal(got, f.data) {
			t.Fatalf("backup %s file %s: read %d bytes differing from the %d written", m.ID, f.path, len(got), len(f.data))
		}
	}
}

// faultBackend fails Save or Remove for chosen names, to simulate a process
// killed between two steps.
type faultBackend struct {
	storage.Backend
	failSave   func(name string) bool
	failRemove func(name string) bool
}

var errInjected = errors.New("injected failure")

func (f *faultBackend) Save(ctx context.Context, name string, r io.Reader, size int64) error {
	if f.failSave != nil && f.failSave(name) {
		return storage.Permanent("save", name, errInjected)
	}
	return f.Backend.Save(ctx, name, r, size)
}

func (f *faultBackend) Remove(ctx context.Context, name string) error {
	if f.failRemove != nil && f.failRemove(name) {
		return storage.Permanent("remove", name, errInjected)
	}
	return f.Backend.Remove(ctx, name)
}

func flipByte(t testing.TB, be storage.Backend, name string, off int64) {
	t.Helper()
	ctx := context.Background()
	data, err := loadAll(ctx, be, name)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0x40
	if err := saveBytes(ctx, be, name, data); err != nil {
		t.Fatal(err)
	}
}

// objectNames lists the objects under prefix, sorted.
func objectNames(t testing.TB, be storage.Backend, prefix string) []string {
	t.Helper()
	names := objects.Names(t, be, prefix)
	slices.Sort(names)
	return names
}

// randomTable is like the pages of a table of 1 KiB random values, 7 to a
// page: random bytes with a zeroed tail of each 8 KiB page (its free
// space and headers), which zstd shrinks by about a tenth.
func randomTable(seed uint64, n int) []byte {
	b := randomData(seed, n)
	for page := 0; page < n; page += 8 << 10 {
		clear(b[page+7*1024 : min(page+8<<10, n)])
	}
	return b
}
