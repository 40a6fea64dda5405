package wal

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
)

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	return newRepoIn(t, filepath.Join(t.TempDir(), "repo"))
}

// newRepoIn is newRepo with its storage in the directory root.
func newRepoIn(t *testing.T, root string) *repo.Repository {
	t.Helper()
	be, err := storage.NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	opts := repo.DefaultOptions()
	opts.KDF = repo.KDFParams{KDF: repo.Argon2id, Time: 1, Memory: 64, Threads: 1}
	r, err := repo.Init(context.Background(), be, repo.Passphrase("test"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pgWAL lays out pg_wal with segments of 1 MiB (the smallest segment size)
// and marks the given ones ready.
func pgWAL(t *testing.T, names []string, ready []string) (string, map[string][]byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	content := map[string][]byte{}
	for _, n := range names {
		data := make([]byte, 1<<20)
		rand.Read(data[:4096])
		content[n] = data
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range ready {
		if err := os.WriteFile(filepath.Join(dir, "archive_status", n+".ready"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, content
}

func TestPushLooksAheadAndLaterCallsReturnFromSpool(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	segs := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003", "000000010000000000000004"}
	dir, content := pgWAL(t, segs, segs)
	res, err := Push(ctx, r, filepath.Join(dir, segs[0]), PushOptions{Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Ahead, segs[1:3]) || res.Spooled {
		t.Fatalf("first push: ahead %v spooled %v, want %v pushed ahead", res.Ahead, res.Spooled, segs[1:3])
	}
	// PostgreSQL marks the first done and asks for the second.
	os.Rename(filepath.Join(dir, "archive_status", segs[0]+".ready"), filepath.Join(dir, "archive_status", segs[0]+".done"))
	res, err = Push(ctx, r, filepath.Join(dir, segs[1]), PushOptions{Parallel: 3})
	if err != nil || !res.Spooled {
		t.Fatalf("second push: spooled %v err %v; want it answered from the spool", res.Spooled, err)
	}
	for _, n := range segs[:3] {
		got, err := r.GetWAL(ctx, n)
		if err != nil || !bytes.Equal(got, content[n]) {
			t.Errorf("archived %s: err %v, equal %v", n, err, bytes.Equal(got, content[n]))
		}
	}
}

func TestPushSameTwiceSucceedsDifferentContentFails(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	seg := "000000010000000000000007"
	dir, _ := pgWAL(t, []string{seg}, nil)
	path := filepath.Join(dir, seg)
	for i := range 2 {
		if _, err := Push(ctx, r, path, PushOptions{}); err != nil {
			t.Fatalf("push %d of the same segment: %v", i+1, err)
		}
	}
	other := make([]byte, 1<<20)
	rand.Read(other)
	if err := os.WriteFile(path, other, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Push(ctx, r, path, PushOptions{})
	if !errors.Is(err, repo.ErrWALConflict) {
		t.Fatalf("push of different content under %s: %v, want ErrWALConflict", seg, err)
	}
}

func TestPushSpoolRecordOfOtherContentIsNotTrusted(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	segs := []string{"000000010000000000000001", "000000010000000000000002"}
	dir, _ := pgWAL(t, segs, segs)
	if _, err := Push(ctx, r, filepath.Join(dir, segs[0]), PushOptions{Parallel: 2}); err != nil {
		t.Fatal(err)
	}
	// The second segment changes on disk after being pushed ahead (it
	// cannot in PostgreSQL, but the spool must not be the judge).
	other := make([]byte, 1<<20)
	rand.Read(other)
	os.WriteFile(filepath.Join(dir, segs[1]), other, 0o600)
	res, err := Push(ctx, r, filepath.Join(dir, segs[1]), PushOptions{Parallel: 2})
	if !errors.Is(err, repo.ErrWALConflict) || res.Spooled {
		t.Fatalf("push of changed content with a spool record: spooled %v err %v; want a conflict", res.Spooled, err)
	}
}

func TestFetchPrefetchesAndMissingFileIsNotAnError(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	segs := []string{"0000000100000000000000FE", "0000000100000000000000FF", "000000010000000000000100", "000000010000000000000101"}
	_, content := pgWAL(t, segs, nil)
	for _, n := range segs {
		if err := r.PutWAL(ctx, n, content[n]); err != nil {
			t.Fatal(err)
		}
	}
	hist := []byte("1\t0/3000000\tno recovery target specified\n")
	r.PutWAL(ctx, "00000002.history", hist)
	out := filepath.Join(t.TempDir(), "pg_wal")
	os.MkdirAll(out, 0o700)
	dest := filepath.Join(out, "RECOVERYXLOG")

	// A killed fetch's temporary file goes with the next call.
	stale := dest + ".4242.tmp"
	if err := os.WriteFile(stale, []byte("half a segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The look-ahead starts at none and grows while the calls ask for
	// consecutive segments (with 1 MiB segments there are 4096 per log
	// file: FE is followed by FF, then 100).
	for _, c := range []struct {
		why            string
		seg            string
		spooled        bool
		wantPrefetched []string
	}{
		{"first call: no look-ahead", segs[0], false, nil},
		{"second in order: one ahead", segs[1], false, segs[2:3]},
		{"served from the spool", segs[2], true, nil},
		{"the last in the archive: nothing after it", segs[3], false, nil},
		{"out of order: no look-ahead", segs[1], false, nil},
	} {
		res, err := Fetch(ctx, r, c.seg, dest, FetchOptions{Prefetch: 2})
		if got, _ := os.ReadFile(dest); err != nil || !res.Found || res.Spooled != c.spooled || !slices.Equal(res.Prefetched, c.wantPrefetched) || !bytes.Equal(got, content[c.seg]) {
			t.Fatalf("%s: fetch %s: %+v, err %v, content equal %v; want found, spooled %v, prefetched %v",
				c.why, c.seg, res, err, bytes.Equal(got, content[c.seg]), c.spooled, c.wantPrefetched)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a killed fetch's %s is still there after fetching %s (%v)", stale, c.seg, err)
		}
	}
	res, err := Fetch(ctx, r, "00000003.history", dest, FetchOptions{})
	if err != nil || res.Found {
		t.Fatalf("fetch of a history file the archive lacks: %+v %v; want not found, no error", res, err)
	}
	res, err = Fetch(ctx, r, "00000002.history", dest, FetchOptions{})
	if got, _ := os.ReadFile(dest); err != nil || !res.Found || !bytes.Equal(got, hist) {
		t.Fatalf("fetch of a history file: %+v %v %q", res, err, got)
	}
}

// A segment that does not authenticate, or whose content does not match
// its tag (found only once all of it was written), never reaches
// restore_command's destination, and no temporary file is left beside it
// or in the spool.
func TestFetchOfADamagedSegmentLeavesNothing(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	r := newRepoIn(t, root)
	segs := []string{"000000010000000000000004", "000000010000000000000005"}
	_, content := pgWAL(t, segs, nil)
	for _, n := range segs {
		if err := r.PutWAL(ctx, n, content[n]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		seg  string
		off  int64 // the byte of the stored object to flip
	}{
		{"content does not match its tag", segs[0], 4},
		{"sealed object does not authenticate", segs[1], 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			obj := filepath.Join(root, "wal", "00000001", c.seg)
			data, err := os.ReadFile(obj)
			if err != nil {
				t.Fatal(err)
			}
			data[c.off] ^= 0x40
			if err := os.WriteFile(obj, data, 0o600); err != nil {
				t.Fatal(err)
			}
			walDir := filepath.Join(t.TempDir(), "pg_wal")
			os.MkdirAll(walDir, 0o700)
			dest := filepath.Join(walDir, "RECOVERYXLOG")
			res, err := Fetch(ctx, r, c.seg, dest, FetchOptions{Prefetch: 2})
			if !errors.Is(err, repo.ErrCorrupt) || res.Found {
				t.Fatalf("fetch of a damaged %s: %+v, %v; want ErrCorrupt", c.seg, res, err)
			}
			var left []string
			filepath.WalkDir(walDir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && d.Name() != sequenceFile {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Fatalf("files left after the failed fetch: %v; want none", left)
			}
		})
	}
}

func TestNextSegmentsCrossLogBoundary(t *testing.T) {
	cases := []struct {
		name string
		seg  string
		size int64
		n    int
		want []string
	}{
		{"16 MiB segments: FF is the last of a log file", "0000000200000003000000FE", 16 << 20, 3,
			[]string{"0000000200000003000000FF", "000000020000000400000000", "000000020000000400000001"}},
		{"1 GiB segments: 4 per log file", "000000010000000000000003", 1 << 30, 1, []string{"000000010000000100000000"}},
		{"history file: nothing to prefetch", "00000002.history", 16 << 20, 3, nil},
		{"odd size: nothing to prefetch", "000000010000000000000003", 3 << 20, 3, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := nextSegments(c.seg, c.size, c.n); !slices.Equal(got, c.want) {
				t.Errorf("nextSegments(%s) = %v, want %v", c.seg, got, c.want)
			}
		})
	}
}

// Near disk.critical the look-ahead stops: the requested segment is still
// fetched, nothing is spooled ahead of it (HA-14, issue 14 item 9).
func TestFetchLookAheadStopsNearMinFree(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	segs := []string{"000000010000000000000010", "000000010000000000000011", "000000010000000000000012", "000000010000000000000013", "000000010000000000000014"}
	_, content := pgWAL(t, segs, nil)
	for _, n := range segs {
		if err := r.PutWAL(ctx, n, content[n]); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "pg_wal")
	os.MkdirAll(out, 0o700)
	dest := filepath.Join(out, "RECOVERYXLOG")
	var st syscall.Statfs_t
	if err := syscall.Statfs(out, &st); err != nil {
		t.Fatal(err)
	}
	// MinFree = the volume's whole size: no look-ahead can ever fit. (The
	// free space itself is no bound: other tests on the same volume free
	// and take space between this Statfs and the one in Fetch.)
	size := st.Blocks * uint64(st.Bsize)
	// The first call of a sequence looks ahead of nothing, so needs no room.
	if res, err := Fetch(ctx, r, segs[0], dest, FetchOptions{Prefetch: 2, MinFree: size}); err != nil || !res.Found || res.SpoolFull {
		t.Fatalf("first fetch with MinFree = the volume's size: %+v %v; want found, no look-ahead wanted", res, err)
	}
	res, err := Fetch(ctx, r, segs[1], dest, FetchOptions{Prefetch: 2, MinFree: size})
	if err != nil || !res.Found || !res.SpoolFull || len(res.Prefetched) != 0 {
		t.Fatalf("fetch with MinFree = the volume's size: %+v %v; want found, spool full, nothing prefetched", res, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, content[segs[1]]) {
		t.Fatal("the requested segment was not written")
	}
	if entries, _ := os.ReadDir(filepath.Join(out, SpoolName, "fetch")); len(entries) != 1 || entries[0].Name() != sequenceFile {
		t.Fatalf("the spool holds %v; want only the sequence record", entries)
	}
	// With room to spare it looks ahead again.
	res, err = Fetch(ctx, r, segs[2], dest, FetchOptions{Prefetch: 2, MinFree: 1 << 20})
	if err != nil || res.SpoolFull || len(res.Prefetched) != 2 {
		t.Fatalf("fetch with room to spare: %+v %v; want 2 prefetched", res, err)
	}
}

// The WAL stream's tail of a segment the archive lacks goes only to a
// targeted recovery (recovery.signal: a restore from the repository alone).
// A standby (standby.signal) has the segment itself; a zero-padded tail
// replayed in its place would end a promotion's recovery early and drop
// commits the standby had flushed.
func TestFetchServesATailOnlyToATargetedRecovery(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	const seg = "000000010000000000000003"
	written := bytes.Repeat([]byte{7}, 4096)
	if err := r.PutWALTail(ctx, seg, 1<<20, written); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		signals []string
		want    bool
	}{
		{nil, false},
		{[]string{"standby.signal"}, false},
		{[]string{"standby.signal", "recovery.signal"}, false},
		{[]string{"recovery.signal"}, true},
	} {
		dataDir := t.TempDir()
		os.MkdirAll(filepath.Join(dataDir, "pg_wal"), 0o700)
		for _, s := range c.signals {
			if err := os.WriteFile(filepath.Join(dataDir, s), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		dest := filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG")
		res, err := Fetch(ctx, r, seg, dest, FetchOptions{NoPrefetch: true})
		if err != nil {
			t.Fatalf("signals %v: %v", c.signals, err)
		}
		if res.Found != c.want || res.Tail != c.want {
			t.Fatalf("signals %v: found %v tail %v, want %v", c.signals, res.Found, res.Tail, c.want)
		}
		got, err := os.ReadFile(dest)
		switch {
		case c.want && (err != nil || len(got) != 1<<20 || !bytes.Equal(got[:len(written)], written)):
			t.Fatalf("signals %v: served %d bytes (%v), want the tail zero-padded to 1 MiB", c.signals, len(got), err)
		case !c.want && err == nil:
			t.Fatalf("signals %v: %d bytes written to %%p, want nothing", c.signals, len(got))
		}
	}
}
