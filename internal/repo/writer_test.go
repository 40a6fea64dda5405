package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

// Blocks are saved in the background; a failure to store one must still
// reach the caller, at the latest from Close, and keep the file out of the
// manifest.
func TestFailedPackUploadIsReturnedByCloseAndKeepsTheFileOut(t *testing.T) {
	ctx := context.Background()
	mem, _ := memRepo(t)
	failing := &faultBackend{Backend: mem, failSave: func(name string) bool { return strings.HasPrefix(name, "packs/") }}
	r := reopen(t, failing, Runtime{Parallel: 2})
	b, err := r.NewBackup(Header{Kind: KindFull}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := b.CreateFile(ctx, FileMeta{Path: "big"})
	if err != nil {
		t.Fatal(err)
	}
	// Random data fills more than one 1 MiB pack, so a pack upload fails
	// while blocks are being saved.
	_, werr := fw.Write(randomData(7, 3<<20))
	cerr := fw.Close()
	if !errors.Is(cerr, errInjected) {
		t.Fatalf("close after a failed pack upload: got %v (write: %v), want the injected failure", cerr, werr)
	}
	if !strings.Contains(cerr.Error(), "big") {
		t.Fatalf("close error %q does not name the file", cerr)
	}
	if _, err := fw.Write([]byte("x")); err == nil {
		t.Fatal("write after a failed close succeeded")
	}
	m, err := b.Finish(ctx, Header{Kind: KindFull})
	if err == nil && m.File("big") != nil {
		t.Fatal("the manifest lists a file whose blocks were not stored")
	}
}

// Many files written at once, each with blocks saved in the background,
// must come back byte for byte: every block reference lands in its place.
func TestManyConcurrentWritersRoundTrip(t *testing.T) {
	opts := testOptions()
	opts.Runtime.Parallel = 3
	r := initRepo(t, storage.NewMem(), opts)
	var files []testFile
	for i := range 12 {
		data := randomData(uint64(100+i), 200*1024+i*8192+i)
		copy(data[50*1024:], pageLike(i, 64*1024)) // some compressible blocks too
		files = append(files, testFile{fmt.Sprintf("f%02d", i), data})
	}
	ctx := context.Background()
	b, err := r.NewBackup(Header{Kind: KindFull}, nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, len(files))
	for _, f := range files {
		go func() {
			fw, err := b.CreateFile(ctx, FileMeta{Path: f.path})
			if err != nil {
				errc <- err
				return
			}
			// Odd chunk sizes, so blocks are cut across writes.
			for p := f.data; len(p) > 0; {
				n := min(len(p), 7000)
				if _, err := fw.Write(p[:n]); err != nil {
					errc <- err
					return
				}
				p = p[n:]
			}
			errc <- fw.Close()
		}()
	}
	for range files {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	m, err := b.Finish(ctx, Header{Kind: KindFull})
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, r, m, files)
}

// A closed writer refuses more data, whichever method is called.
func TestClosedWriterRefusesWriteSkipAndClose(t *testing.T) {
	for _, parallel := range []int{1, 3} {
		opts := testOptions()
		opts.Runtime.Parallel = parallel
		r := initRepo(t, storage.NewMem(), opts)
		ctx := context.Background()
		prev := writeBackup(t, r, KindFull, nil, []testFile{{"f", randomData(3, 40*1024)}})
		b, _ := r.NewBackup(Header{Kind: KindIncr}, prev)
		fw, _ := b.CreateFile(ctx, FileMeta{Path: "f"})
		if _, err := fw.Write(randomData(4, 20*1024)); err != nil {
			t.Fatal(err)
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write([]byte("x")); err == nil {
			t.Errorf("parallel %d: write after close succeeded", parallel)
		}
		if err := fw.Skip(8192); err == nil {
			t.Errorf("parallel %d: skip after close succeeded", parallel)
		}
		if err := fw.Close(); err == nil {
			t.Errorf("parallel %d: second close succeeded", parallel)
		}
	}
}
