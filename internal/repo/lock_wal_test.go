package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

func TestLockConflicts(t *testing.T) {
	cases := []struct {
		name       string
		first      bool // exclusive?
		second     bool
		age        time.Duration // how long ago the first lock was refreshed
		wantLocked bool
	}{
		{"two backups share the repository", false, false, 0, false},
		{"gc waits for a running backup", false, true, 0, true},
		{"a backup waits for a running gc", true, false, 0, true},
		{"two gcs exclude each other", true, true, 0, true},
		{"a stale gc lock is ignored", true, false, 31 * time.Minute, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			mem, _ := memRepo(t)
			clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 45, 0, 0, time.UTC)}
			a := reopen(t, mem, Runtime{Host: "db1", PID: 100, Now: clock.Now})
			b := reopen(t, mem, Runtime{Host: "db2", PID: 200, Now: clock.Now})
			la, err := a.Lock(ctx, c.first)
			if err != nil {
				t.Fatal(err)
			}
			defer la.Unlock(ctx)
			clock.Add(c.age)
			lb, err := b.Lock(ctx, c.second)
			if !c.wantLocked {
				if err != nil {
					t.Fatalf("second lock: %v", err)
				}
				lb.Unlock(ctx)
				return
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("second lock: got %v, want ErrLocked", err)
			}
			for _, want := range []string{"db1", "pid 100", "2026-11-23T10:45:00Z"} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("conflict %q does not say %q", err, want)
				}
			}
			if locks, _ := a.Locks(ctx); len(locks) != 1 {
				t.Fatalf("refused lock left its object behind: %v", locks)
			}
		})
	}
}

func TestUnlockReleasesAndRefreshKeepsALockFresh(t *testing.T) {
	ctx := context.Background()
	mem, _ := memRepo(t)
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	a := reopen(t, mem, Runtime{Host: "db1", PID: 1, Now: clock.Now})
	b := reopen(t, mem, Runtime{Host: "db2", PID: 2, Now: clock.Now})
	la, err := a.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(25 * time.Minute)
	if err := la.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Add(25 * time.Minute) // 50 min after creation, 25 after refresh
	if _, err := b.Lock(ctx, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock refreshed 25 minutes ago: got %v, want it still held", err)
	}
	if n, err := b.RemoveStaleLocks(ctx); err != nil || n != 0 {
		t.Fatalf("RemoveStaleLocks removed %d (%v), want 0 fresh locks removed", n, err)
	}
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Lock(ctx, true)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	lb.Unlock(ctx)
	if got := objectNames(t, mem, "locks/"); len(got) != 0 {
		t.Fatalf("locks left after unlock: %v", got)
	}
}

func TestRemoveStaleLocksRemovesOnlyStaleOnes(t *testing.T) {
	ctx := context.Background()
	mem, _ := memRepo(t)
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	r := reopen(t, mem, Runtime{Now: clock.Now})
	if _, err := r.Lock(ctx, false); err != nil { // never unlocked: a crashed process
		t.Fatal(err)
	}
	clock.Add(time.Hour)
	fresh, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Unlock(ctx)
	if n, err := r.RemoveStaleLocks(ctx); err != nil || n != 1 {
		t.Fatalf("RemoveStaleLocks = %d, %v; want the one stale lock removed", n, err)
	}
	if got := objectNames(t, mem, "locks/"); len(got) != 1 {
		t.Fatalf("locks after cleanup: %v, want the fresh one", got)
	}
}

func TestWAL(t *testing.T) {
	ctx := context.Background()
	mem, r := memRepo(t)
	seg := "000000010000000000000003"
	data := append(pageLike(5, 4*PageSize), randomData(6, PageSize)...)
	if err := r.PutWAL(ctx, seg, data); err != nil {
		t.Fatal(err)
	}
	if got, err := r.GetWAL(ctx, seg); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get WAL: %d bytes, %v; want the %d bytes put", len(got), err, len(data))
	}
	if got := objectNames(t, mem, "wal/"); !slices.Equal(got, []string{"wal/00000001/" + seg}) {
		t.Fatalf("WAL stored as %v", got)
	}

	t.Run("putting identical content again succeeds", func(t *testing.T) {
		if err := r.PutWAL(ctx, seg, append([]byte(nil), data...)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("putting different content fails naming the segment", func(t *testing.T) {
		other := append([]byte(nil), data...)
		other[100] ^= 1
		err := r.PutWAL(ctx, seg, other)
		if !errors.Is(err, ErrWALConflict) || !strings.Contains(err.Error(), seg) {
			t.Fatalf("got %v, want ErrWALConflict naming %s", err, seg)
		}
		if got, _ := r.GetWAL(ctx, seg); !bytes.Equal(got, data) {
			t.Fatal("a conflicting put replaced the archived segment")
		}
	})
	t.Run("history files and listing by timeline", func(t *testing.T) {
		for _, name := range []string{"00000002.history", "000000020000000000000004", "000000010000000000000002"} {
			if err := r.PutWAL(ctx, name, []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := r.ListWAL(ctx, "00000002"); !slices.Equal(got, []string{"00000002.history", "000000020000000000000004"}) {
			t.Fatalf("timeline 2: %v", got)
		}
		all, _ := r.ListWAL(ctx, "")
		if len(all) != 4 || all[0] != "000000010000000000000002" {
			t.Fatalf("all WAL: %v", all)
		}
		if err := r.RemoveWAL(ctx, "000000010000000000000002"); err != nil {
			t.Fatal(err)
		}
		if all, _ := r.ListWAL(ctx, "00000001"); !slices.Equal(all, []string{seg}) {
			t.Fatalf("after remove: %v", all)
		}
	})
	t.Run("bad names are refused", func(t *testing.T) {
		for _, name := range []string{"", "../../config", "00000001/x", "zz000001.history"} {
			if err := r.PutWAL(ctx, name, data); err == nil {
				t.Fatalf("PutWAL(%q) succeeded", name)
			}
		}
	})
	t.Run("a damaged WAL object is an error, never garbage", func(t *testing.T) {
		flipByte(t, mem, "wal/00000001/"+seg, walHeaderLen+30)
		if _, err := r.GetWAL(ctx, seg); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
		var w bytes.Buffer
		if n, err := r.WriteWALTo(ctx, seg, &w); !errors.Is(err, ErrCorrupt) || n != 0 || w.Len() != 0 {
			t.Fatalf("WriteWALTo: %d bytes written, %v; want nothing written and ErrCorrupt", n, err)
		}
	})
	t.Run("content that does not match its tag is an error once read", func(t *testing.T) {
		const seg = "000000010000000000000009"
		if err := r.PutWAL(ctx, seg, data); err != nil {
			t.Fatal(err)
		}
		flipByte(t, mem, "wal/00000001/"+seg, 4) // the tag, outside the seal
		if _, err := r.GetWAL(ctx, seg); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetWAL: %v, want ErrCorrupt", err)
		}
		if _, err := r.WriteWALTo(ctx, seg, io.Discard); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("WriteWALTo: %v, want ErrCorrupt", err)
		}
	})
}

// A segment larger than largeObject is compressed as a stream (zstd) or
// in one block (lz4), and stored whole when it does not compress; each
// comes back as it was.
func TestLargeWALSegmentsRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, comp := range []Compression{CompressZstd, CompressLZ4} {
		opts := testOptions()
		opts.Compression = comp
		r := initRepo(t, storage.NewMem(), opts)
		for i, data := range [][]byte{pageLike(3, 3<<20), randomData(4, largeObject+1)} {
			seg := fmt.Sprintf("0000000100000000000000%02X", i)
			if err := r.PutWAL(ctx, seg, data); err != nil {
				t.Fatal(err)
			}
			got, err := r.GetWAL(ctx, seg)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s %s: got %d bytes back (%v), want the %d put", comp, seg, len(got), err, len(data))
			}
			var w bytes.Buffer
			if n, err := r.WriteWALTo(ctx, seg, &w); err != nil || n != int64(len(data)) || !bytes.Equal(w.Bytes(), data) {
				t.Fatalf("%s %s: WriteWALTo wrote %d bytes (%d reported, %v), want the %d put", comp, seg, w.Len(), n, err, len(data))
			}
			size, err := r.WALStoredSize(ctx, seg)
			if err != nil {
				t.Fatal(err)
			}
			if compressible := i == 0; compressible != (size < int64(len(data))/2) {
				t.Fatalf("%s %s: %d bytes stored for %d (compressible %v)", comp, seg, size, len(data), compressible)
			}
		}
	}
}
