package repo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster/objects"
)

func collect(t *testing.T, r *Repository, backupID string) []Problem {
	t.Helper()
	var ps []Problem
	if err := r.Verify(context.Background(), backupID, func(p Problem) { ps = append(ps, p) }); err != nil {
		t.Fatalf("verify: %v", err)
	}
	return ps
}

func TestVerifyCleanRepositoryReportsNothing(t *testing.T) {
	_, r := memRepo(t)
	m := writeBackup(t, r, KindFull, nil, sampleFiles())
	for _, id := range []string{m.ID, ""} {
		if ps := collect(t, r, id); len(ps) != 0 {
			t.Fatalf("verify %q of a clean repository: %v", id, ps)
		}
	}
}

func TestVerifyNamesTheFileOfAFlippedByte(t *testing.T) {
	mem, r := memRepo(t)
	files := sampleFiles()
	m := writeBackup(t, r, KindFull, nil, files)
	victim := m.File("global/pg_control").Blocks[0].ID
	pack, e, ok := r.idx.Load().lookup(victim)
	if !ok {
		t.Fatal("block of pg_control not indexed")
	}
	flipByte(t, mem, pack.name(), int64(e.Offset)+int64(e.Length)/2)

	ps := collect(t, r, m.ID)
	if len(ps) != 1 || ps[0].Path != "global/pg_control" || ps[0].Block != victim || !errors.Is(ps[0].Err, ErrCorrupt) {
		t.Fatalf("verify after flipping a byte of pg_control's block: %v, want one corrupt-block problem naming it", ps)
	}
	msg := ps[0].String()
	if !strings.Contains(msg, m.ID) || !strings.Contains(msg, "global/pg_control") || !strings.Contains(msg, victim.Short()) {
		t.Fatalf("problem %q does not name backup, file and block", msg)
	}
	all := collect(t, r, "")
	var packProblem bool
	for _, p := range all {
		packProblem = packProblem || (p.BackupID == "" && p.Pack == pack.name())
	}
	if !packProblem {
		t.Fatalf("verify of the whole repository %v does not name the damaged pack", all)
	}
	if _, err := r.LoadBlock(context.Background(), victim); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading the damaged block: %v, want ErrCorrupt", err)
	}
}

func TestVerifyWholeRepositoryFindsDamageInAPackHeader(t *testing.T) {
	mem, r := memRepo(t)
	writeBackup(t, r, KindFull, nil, sampleFiles())
	packs := objectNames(t, mem, "packs/")
	fi, _ := mem.Stat(context.Background(), packs[0])
	flipByte(t, mem, packs[0], fi.Size-10) // inside the header, no block touched
	ps := collect(t, r, "")
	if len(ps) != 1 || ps[0].Pack != packs[0] {
		t.Fatalf("verify after damaging a pack header: %v, want the pack named", ps)
	}
}

func TestGCKeepsEveryRemainingBackupByteForByte(t *testing.T) {
	ctx := context.Background()
	mem, r := memRepo(t)
	common := randomData(50, 96*1024)
	sets := [][]testFile{
		{{"common", common}, {"only1", randomData(51, 900*1024)}},
		{{"common", common}, {"only2", randomData(52, 300*1024)}},
		{{"common", common}, {"only3", randomData(53, 200*1024)}},
	}
	var ms []*Manifest
	for _, s := range sets {
		ms = append(ms, writeBackup(t, r, KindFull, nil, s))
	}
	if _, err := r.GC(ctx); err == nil || !strings.Contains(err.Error(), "exclusive lock") {
		t.Fatalf("gc without the exclusive lock: got %v, want a refusal", err)
	}
	before := objects.PackBytes(t, mem)
	lk, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock(ctx)
	if err := r.DeleteManifest(ctx, ms[0].ID); err != nil {
		t.Fatal(err)
	}
	st, err := r.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backups != 2 || st.PacksDeleted == 0 || st.BytesFreed < 900*1024 {
		t.Fatalf("gc stats %+v, want 2 backups kept and only1's bytes freed", st)
	}
	if after := objects.PackBytes(t, mem); after > before-900*1024 {
		t.Fatalf("pack bytes %d -> %d, want only1's 900 KiB gone", before, after)
	}
	if idx := objectNames(t, mem, "index/"); len(idx) != 1 {
		t.Fatalf("after gc %d index objects, want the one new index", len(idx))
	}
	r2 := reopen(t, mem, Runtime{})
	for i, m := range ms[1:] {
		checkFiles(t, r2, m, sets[i+1])
	}
	if ps := collect(t, r2, ""); len(ps) != 0 {
		t.Fatalf("verify after gc: %v", ps)
	}
}

func TestGCRepacksMostlyDeadPacks(t *testing.T) {
	ctx := context.Background()
	mem, r := memRepo(t)
	keep := []testFile{{"small", randomData(60, 100*1024)}}
	// One pack holding both files: the kept one is under half of it.
	m1 := writeBackup(t, r, KindFull, nil, append([]testFile{{"big", randomData(61, 800*1024)}}, keep...))
	m2 := writeBackup(t, r, KindFull, nil, keep)
	lk, _ := r.Lock(ctx, true)
	defer lk.Unlock(ctx)
	if err := r.DeleteManifest(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	st, err := r.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PacksRepacked != 1 || st.BlocksRemoved != 50 {
		t.Fatalf("gc stats %+v, want one pack repacked and the 50 blocks of big removed", st)
	}
	if n := objects.PackBytes(t, mem); n > 110*1024 {
		t.Fatalf("after repack %d pack bytes remain, want about 100 KiB", n)
	}
	checkFiles(t, reopen(t, mem, Runtime{}), m2, keep)
}

// GC interrupted after the new index was saved and before old packs were
// removed: backups stay readable, and the next GC finishes the job.
func TestGCInterruptedBeforePackRemovalLosesNothing(t *testing.T) {
	ctx := context.Background()
	mem, _ := memRepo(t)
	flaky := &faultBackend{Backend: mem, failRemove: func(name string) bool { return strings.HasPrefix(name, "packs/") }}
	r := reopen(t, flaky, Runtime{Parallel: 1})
	gone := writeBackup(t, r, KindFull, nil, []testFile{{"x", randomData(70, 700*1024)}})
	keepFiles := []testFile{{"y", randomData(71, 200*1024)}}
	kept := writeBackup(t, r, KindFull, nil, keepFiles)
	lk, _ := r.Lock(ctx, true)
	r.DeleteManifest(ctx, gone.ID)
	if _, err := r.GC(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("gc with pack removal failing: got %v, want the injected failure", err)
	}
	lk.Unlock(ctx)

	r2 := reopen(t, mem, Runtime{})
	checkFiles(t, r2, kept, keepFiles)
	lk2, _ := r2.Lock(ctx, true)
	defer lk2.Unlock(ctx)
	st, err := r2.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PacksDeleted == 0 {
		t.Fatalf("second gc %+v removed nothing; the leftover pack stays", st)
	}
	if n := objects.PackBytes(t, mem); n > 210*1024 {
		t.Fatalf("after the second gc %d pack bytes remain, want about 200 KiB", n)
	}
	checkFiles(t, reopen(t, mem, Runtime{}), kept, keepFiles)
}

func TestGCRefusesWhenAManifestNamesAMissingBlock(t *testing.T) {
	ctx := context.Background()
	mem, r := memRepo(t)
	writeBackup(t, r, KindFull, nil, sampleFiles())
	for _, name := range objectNames(t, mem, "index/") {
		mem.Remove(ctx, name)
	}
	for _, name := range objectNames(t, mem, "packs/") {
		mem.Remove(ctx, name)
	}
	r2 := reopen(t, mem, Runtime{})
	lk, _ := r2.Lock(ctx, true)
	defer lk.Unlock(ctx)
	if _, err := r2.GC(ctx); !errors.Is(err, ErrBlockMissing) {
		t.Fatalf("gc with a manifest naming lost blocks: got %v, want ErrBlockMissing", err)
	}
	if got := objectNames(t, mem, "manifests/"); len(got) != 1 {
		t.Fatalf("refused gc changed manifests: %v", got)
	}
}

func TestVerifyReportsAMissingPack(t *testing.T) {
	mem, r := memRepo(t)
	m := writeBackup(t, r, KindFull, nil, sampleFiles())
	packs := objectNames(t, mem, "packs/")
	if err := mem.Remove(context.Background(), packs[0]); err != nil {
		t.Fatal(err)
	}
	ps := collect(t, r, m.ID)
	if len(ps) == 0 || !storage.IsNotExist(ps[0].Err) || ps[0].Path == "" {
		t.Fatalf("verify with a pack deleted: %v, want not-exist problems naming files", ps)
	}
	whole := collect(t, r, "")
	var named bool
	for _, p := range whole {
		named = named || (p.Pack == packs[0] && p.BackupID == "")
	}
	if !named {
		t.Fatalf("verify of the repository %v does not name the missing pack", whole)
	}
}

func TestCloseReleasesLocks(t *testing.T) {
	ctx := context.Background()
	mem, r := memRepo(t)
	if _, err := r.Lock(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := objectNames(t, mem, "locks/"); len(got) != 0 {
		t.Fatalf("locks after Close: %v", got)
	}
}
