package repo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

func TestCopyAPI(t *testing.T) {
	ctx := context.Background()
	_, r := memRepo(t)
	other := initRepo(t, storage.NewMem(), testOptions())
	if r.SameBlockIDs(other) || !r.SameBlockIDs(r) {
		t.Fatal("SameBlockIDs: two repositories with their own keys must differ, one must equal itself")
	}

	data := bytes.Repeat([]byte("page"), PageSize/4)
	id, stored, n, err := r.PutBlock(ctx, data)
	if err != nil || !stored || n <= 0 || id != r.BlockID(data) {
		t.Fatalf("first PutBlock: id ok %v, stored %v, %d bytes, %v", id == r.BlockID(data), stored, n, err)
	}
	if r.HasBlock(id) {
		t.Fatal("a block in an unsaved pack counts as stored")
	}
	if _, stored, n, err := r.PutBlock(ctx, data); err != nil || stored || n != 0 {
		t.Fatalf("second PutBlock of the same content: stored %v, %d bytes, %v", stored, n, err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.HasBlock(id) {
		t.Fatal("block not indexed after Flush")
	}

	ref := []BlockRef{{ID: id, Offset: 0, Length: int64(len(data))}}
	m := &Manifest{
		Header: Header{ID: NewBackupID(time.Now()), Kind: KindFull, StartTime: time.Now().UTC()},
		Files:  []FileEntry{{Path: "base/1/1", Mode: 0o600, Size: int64(len(data)), Checksum: FileChecksum(ref), Blocks: ref}},
	}
	bad := *m
	bad.Files = []FileEntry{m.Files[0]}
	bad.Files[0].Checksum = strings.Repeat("0", 64)
	if err := r.PutManifest(ctx, &bad); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("manifest with a wrong checksum: %v", err)
	}
	bad.Files[0] = m.Files[0]
	bad.Files[0].Size++
	if err := r.PutManifest(ctx, &bad); err == nil || !strings.Contains(err.Error(), "cover") {
		t.Fatalf("manifest whose blocks do not cover the file: %v", err)
	}
	missing := []BlockRef{{ID: other.BlockID(data), Length: int64(len(data))}}
	bad.Files[0] = FileEntry{Path: "x", Size: int64(len(data)), Checksum: FileChecksum(missing), Blocks: missing}
	if err := r.PutManifest(ctx, &bad); err == nil || !strings.Contains(err.Error(), "not in a saved pack") {
		t.Fatalf("manifest naming a block the repository lacks: %v", err)
	}
	if err := r.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := r.PutManifest(ctx, m); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second PutManifest of one id: %v", err)
	}
	got, err := r.LoadManifest(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := r.ReadFile(ctx, got, "base/1/1")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("read back: %v", err)
	}
}
