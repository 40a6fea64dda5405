package repo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

// New repositories are format version 2 with XChaCha20-Poly1305 by default,
// each algorithm with its own derived key; version 1 repositories (one
// shared key, AES-256-GCM) are still opened, read and written; a config
// whose version was rewritten does not open (issue 13 item 6).
func TestFormatVersionsAndPerAlgorithmKeys(t *testing.T) {
	ctx := context.Background()
	if DefaultOptions().Cipher != XChaCha20Poly1305 {
		t.Fatalf("default cipher %s, want %s", DefaultOptions().Cipher, XChaCha20Poly1305)
	}
	master := bytes.Repeat([]byte{7}, masterKeyBytes)
	a1, x1, _ := encryptionKeys(master, 1)
	a2, x2, _ := encryptionKeys(master, 2)
	if !bytes.Equal(a1, x1) {
		t.Fatal("version 1 must keep its one shared key (existing repositories)")
	}
	if bytes.Equal(a2, x2) || bytes.Equal(a2, a1) || bytes.Equal(x2, a1) {
		t.Fatal("version 2 must derive a key of its own for each algorithm")
	}

	for _, tc := range []struct {
		version int
		cipher  Cipher
	}{{2, XChaCha20Poly1305}, {2, AES256GCM}, {1, AES256GCM}, {1, XChaCha20Poly1305}} {
		be := storage.NewMem()
		o := testOptions()
		o.Cipher, o.version = tc.cipher, tc.version
		r := initRepo(t, be, o)
		seg := bytes.Repeat([]byte("wal"), 1000)
		if err := r.PutWAL(ctx, "000000010000000000000001", seg); err != nil {
			t.Fatal(err)
		}
		r.Close(ctx)
		r = reopen(t, be, o.Runtime)
		if r.cfg.Version != tc.version || r.cfg.Cipher != tc.cipher {
			t.Fatalf("reopened as version %d %s, want %d %s", r.cfg.Version, r.cfg.Cipher, tc.version, tc.cipher)
		}
		got, err := r.GetWAL(ctx, "000000010000000000000001")
		if err != nil || !bytes.Equal(got, seg) {
			t.Fatalf("version %d %s: read back %d bytes (%v)", tc.version, tc.cipher, len(got), err)
		}
		if err := r.PutWAL(ctx, "000000010000000000000002", seg); err != nil {
			t.Fatalf("version %d %s: write after reopening: %v", tc.version, tc.cipher, err)
		}
		r.Close(ctx)
	}

	// A version 2 config rewritten to claim version 1, sealed with the
	// version 1 keys (as an attacker holding the master key could, or a
	// bug): it opens as version 1, and then its blobs fail; one sealed
	// with version 2 keys but claiming 1 is refused outright.
	be, r := memRepo(t)
	cfg := r.cfg
	cfg.Version = 1
	forged, err := newRepository(be, Config{Version: 2, Cipher: XChaCha20Poly1305, Compression: CompressNone}, r.master, r.rt)
	if err != nil {
		t.Fatal(err)
	}
	cb := []byte(`{"version":1,"id":"` + cfg.ID + `","cipher":"xchacha20-poly1305","compression":"zstd","compression_level":3,"block_size":16384,"pack_size":1048576}`)
	if err := forged.saveObject(ctx, "config", "config", cb, compNone); err != nil {
		t.Fatal(err)
	}
	r.Close(ctx)
	if _, err := Open(ctx, be, Passphrase(testPass), testOptions().Runtime); err == nil || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("a config claiming another version than its seal: %v", err)
	}
}
