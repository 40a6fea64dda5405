package wal

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/repo"
)

// A standby that followed a switchover keeps its own copy of the old
// timeline's last segment, the same WAL up to the switch point and other
// bytes after it; PostgreSQL may ask it to archive that copy once it is a
// primary. The archive's copy is kept and the push succeeds, but only
// when a timeline history file ends the timeline inside the segment and
// the two agree up to there (1 MiB segments: segment 0x5B of timeline 6
// spans 0/5B00000 to 0/5C00000).
func TestPushKeepsTheArchivedLastSegmentOfAnEndedTimeline(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	const name = "00000006000000000000005B"
	dir, content := pgWAL(t, []string{name}, nil)
	path := filepath.Join(dir, name)
	mine := content[name]
	theirs := bytes.Clone(mine)
	rand.Read(theirs[0xA0:0x2000])
	if err := r.PutWAL(ctx, name, theirs); err != nil {
		t.Fatal(err)
	}

	if _, err := Push(ctx, r, path, PushOptions{}); !errors.Is(err, repo.ErrWALConflict) {
		t.Fatalf("push with no history file ending timeline 6: %v; want ErrWALConflict", err)
	}
	// Timeline 7 forked from 6 at 0/5B000A0; an unrelated line about
	// timeline 6 elsewhere (outside this segment) changes nothing.
	hist := "1\t0/3000000\tno recovery target specified\n6\t0/5B000A0\tno recovery target specified\n"
	if err := os.WriteFile(filepath.Join(dir, "00000007.history"), []byte(hist), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000009.history"), []byte("6\t0/4000000\tother\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Push(ctx, r, path, PushOptions{})
	if err != nil || !strings.Contains(res.Kept, "timeline 6 ended at 0/5B000A0") {
		t.Fatalf("push of the standby's copy: kept %q, err %v; want the archive's copy kept, no error", res.Kept, err)
	}
	if got, err := r.GetWAL(ctx, name); err != nil || !bytes.Equal(got, theirs) {
		t.Fatalf("the archive's copy was replaced or lost (err %v)", err)
	}

	// A difference before the switch point is a real conflict.
	mine[0x10] ^= 0xFF
	if err := os.WriteFile(path, mine, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, r, path, PushOptions{}); !errors.Is(err, repo.ErrWALConflict) {
		t.Fatalf("push of a copy that differs before the switch point: %v; want ErrWALConflict", err)
	}
}

// PushReady archives every ready file without a record, and every older
// timeline's segment without a status, and leaves a record of each, so
// that archive_command's own call for it returns from the spool; a file
// with a record is not pushed again, and a conflict is reported, not
// fatal to the rest.
func TestPushReadyRecordsWhatItPushed(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	segs := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003", "000000010000000000000004"}
	// Without a status: an older timeline's leftover (pushed), and a
	// segment of the current timeline 2 (PostgreSQL's to mark, not pushed).
	const leftover, current = "000000010000000000000005", "000000020000000000000006"
	dir, content := pgWAL(t, append(slices.Clone(segs), leftover, current), segs)
	spool := filepath.Join(dir, SpoolName, "push")
	if err := recordPushed(spool, segs[0], "recorded-before"); err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(content[segs[3]])
	other[0] ^= 0xFF
	if err := r.PutWAL(ctx, segs[3], other); err != nil {
		t.Fatal(err)
	}
	res := PushReady(ctx, r, dir, 2)
	if want := append(slices.Clone(segs[1:3]), leftover); !slices.Equal(res.Ahead, want) {
		t.Fatalf("pushed %v, want %v", res.Ahead, want)
	}
	if err := res.AheadFailed[segs[3]]; !errors.Is(err, repo.ErrWALConflict) {
		t.Fatalf("the conflicting %s: %v, want ErrWALConflict", segs[3], err)
	}
	if _, err := r.GetWAL(ctx, segs[0]); err == nil {
		t.Fatalf("%s had a record and was pushed anyway", segs[0])
	}
	if _, err := r.GetWAL(ctx, current); err == nil {
		t.Fatalf("%s, of the current timeline and not ready, was pushed", current)
	}
	for _, n := range append(slices.Clone(segs[1:3]), leftover) {
		got, err := r.GetWAL(ctx, n)
		if err != nil || !bytes.Equal(got, content[n]) {
			t.Fatalf("%s not archived: %v", n, err)
		}
		res, err := Push(ctx, r, filepath.Join(dir, n), PushOptions{Parallel: 1})
		if err != nil || !res.Spooled {
			t.Fatalf("archive_command's call for %s after PushReady: %+v %v; want it confirmed from the spool", n, res, err)
		}
	}
}
