package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

// What whoever can write the storage, without the key, can make an open
// or an archive push do (issue 13 item 5): KDF parameters are bounded
// before any key derivation runs, the number of key objects tried is
// bounded, and a WAL conflict is reported only for a stored object that
// authenticates (a planted or damaged one is replaced).
func TestHostileStorageIsBounded(t *testing.T) {
	ctx := context.Background()
	be, r := memRepo(t)
	seg := bytes.Repeat([]byte("segment one "), 4000)
	if err := r.PutWAL(ctx, "000000010000000000000001", seg); err != nil {
		t.Fatal(err)
	}
	r.Close(ctx)

	// A planted key object asking argon2id for 64 GiB: skipped before its
	// KDF runs; the real key object still opens the repository, and a
	// wrong passphrase's error names what was skipped.
	planted := keyObject{Version: 1, Created: time.Now(), Source: "passphrase", KDF: string(Argon2id),
		Salt: bytes.Repeat([]byte{1}, 32), Time: 1, Memory: 64 << 20, Threads: 1, Data: []byte("x")}
	b, _ := json.Marshal(planted)
	if err := saveBytes(ctx, be, "keys/0000planted", b); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	r = reopen(t, be, testOptions().Runtime)
	r.Close(ctx)
	_, err := Open(ctx, be, Passphrase("a wrong passphrase entirely"), testOptions().Runtime)
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "outside the bounds") {
		t.Fatalf("open with a wrong passphrase beside a key object asking for 64 GiB: %v, want ErrWrongKey naming the skipped object", err)
	}
	if d := time.Since(started); d > 30*time.Second {
		t.Fatalf("the opens took %s: the 64 GiB KDF ran", d)
	}
	if err := be.Remove(ctx, "keys/0000planted"); err != nil {
		t.Fatal(err)
	}

	// More key objects than pgguard tries.
	for i := range maxKeyObjects {
		if err := saveBytes(ctx, be, "keys/extra"+strings.Repeat("0", 3)+string(rune('a'+i%26))+string(rune('a'+i/26)), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(ctx, be, Passphrase(testPass), testOptions().Runtime); err == nil || !strings.Contains(err.Error(), "key objects") {
		t.Fatalf("open with %d key objects: %v, want a refusal", maxKeyObjects+1, err)
	}
	var extra []string
	_ = be.List(ctx, "keys/extra", func(fi storage.FileInfo) error { extra = append(extra, fi.Name); return nil })
	for _, n := range extra {
		_ = be.Remove(ctx, n)
	}
	r = reopen(t, be, testOptions().Runtime)
	defer r.Close(ctx)

	// A genuine conflict: authentic stored content that differs.
	other := bytes.Repeat([]byte("segment two "), 4000)
	if err := r.PutWAL(ctx, "000000010000000000000001", other); !errors.Is(err, ErrWALConflict) {
		t.Fatalf("push of different content over an authentic object: %v, want ErrWALConflict", err)
	}
	// A planted object under another name (right magic, a random tag, a
	// body that does not authenticate): replaced, not a conflict.
	obj, _ := walObjectName("000000010000000000000002")
	fake := append(append(append([]byte{}, walMagic...), bytes.Repeat([]byte{9}, walHeaderLen-len(walMagic))...), []byte("junk")...)
	if err := saveBytes(ctx, be, obj, fake); err != nil {
		t.Fatal(err)
	}
	if err := r.PutWAL(ctx, "000000010000000000000002", other); err != nil {
		t.Fatalf("push over a planted object: %v, want it replaced", err)
	}
	if got, err := r.GetWAL(ctx, "000000010000000000000002"); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("after replacing the planted object: %d bytes, %v", len(got), err)
	}
}

// A pack deleted outside pgguard: the next open counts it missing and a
// block it held is stored again instead of being deduplicated against it.
func TestMissingPackIsNotDeduplicatedAgainst(t *testing.T) {
	ctx := context.Background()
	be, r := memRepo(t)
	block := bytes.Repeat([]byte("a page of data "), 1000)
	if _, stored, _, err := r.PutBlock(ctx, block); err != nil || !stored {
		t.Fatalf("first put: stored %v, %v", stored, err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.Close(ctx)
	packs := objectNames(t, be, "packs/")
	if len(packs) != 1 {
		t.Fatalf("%d packs, want 1", len(packs))
	}
	if err := be.Remove(ctx, packs[0]); err != nil {
		t.Fatal(err)
	}
	r = reopen(t, be, testOptions().Runtime)
	defer r.Close(ctx)
	if r.MissingPacks() != 1 {
		t.Fatalf("missing packs %d after deleting one, want 1", r.MissingPacks())
	}
	if _, stored, _, err := r.PutBlock(ctx, block); err != nil || !stored {
		t.Fatalf("put after the pack was deleted: stored %v, %v; want the block stored again", stored, err)
	}
}

// The head catches a backup or an index object deleted outside pgguard,
// and a storage rolled back to an older state, on the next open; what
// pgguard deletes itself (a backup deleted, an index rewritten by GC) is no
// problem (issue 13 item 5).
func TestHeadReportsDeletionAndRollback(t *testing.T) {
	ctx := context.Background()
	be := storage.NewMem()
	o := testOptions()
	o.Runtime.StateDir = t.TempDir()
	r := initRepo(t, be, o)
	files := []testFile{{path: "base/1/1", data: pageLike(1, 8*PageSize)}}
	m1 := writeBackup(t, r, KindFull, nil, files)
	m2 := writeBackup(t, r, KindFull, nil, []testFile{{path: "base/1/1", data: pageLike(2, 8*PageSize)}})
	r.Close(ctx)
	if p := reopen(t, be, o.Runtime).HeadProblem(); p != "" {
		t.Fatalf("a repository only pgguard wrote: head problem %q", p)
	}

	// pgguard's own deletion and GC: no problem.
	r = reopen(t, be, o.Runtime)
	lock, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteManifest(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GC(ctx); err != nil {
		t.Fatal(err)
	}
	lock.Unlock(ctx)
	r.Close(ctx)
	if p := reopen(t, be, o.Runtime).HeadProblem(); p != "" {
		t.Fatalf("after pgguard's own delete and GC: head problem %q", p)
	}

	// A snapshot of the storage as it is now, for the rollback below.
	snapshot := storage.NewMem()
	for _, n := range objectNames(t, be, "") {
		b, err := loadAll(ctx, be, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := saveBytes(ctx, snapshot, n, b); err != nil {
			t.Fatal(err)
		}
	}

	// A backup deleted behind pgguard's back.
	if err := be.Remove(ctx, manifestName(m2.ID)); err != nil {
		t.Fatal(err)
	}
	r = reopen(t, be, o.Runtime)
	if p := r.HeadProblem(); !strings.Contains(p, "gone, deleted outside pgguard: "+m2.ID) {
		t.Fatalf("a manifest deleted outside pgguard: head problem %q", p)
	}
	// The next commit adopts it: reported once.
	writeBackup(t, r, KindFull, nil, files)
	r.Close(ctx)
	if p := reopen(t, be, o.Runtime).HeadProblem(); p != "" {
		t.Fatalf("after the next backup adopted the change: %q", p)
	}

	// The storage rolled back to the snapshot: its head is older than
	// this host saw.
	r = reopen(t, snapshot, o.Runtime)
	if p := r.HeadProblem(); !strings.Contains(p, "rolled back") {
		t.Fatalf("a rolled-back storage: head problem %q", p)
	}
	r.Close(ctx)
}
