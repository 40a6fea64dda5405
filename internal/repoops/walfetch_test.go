package repoops_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// A file the archive lacks is answered "not found" from one look at the
// storage, without opening the repository (a promotion waits for these
// answers): with a wrong passphrase, the missing file is still a quiet
// "no", while an archived one fails on the key.
func TestWALFetchOfAMissingFileNeedsNoKey(t *testing.T) {
	ctx := context.Background()
	s := testSettings(t)
	seg := filepath.Join(t.TempDir(), "000000010000000000000003")
	if err := os.WriteFile(seg, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := repoops.WALPush(ctx, s, seg); err != nil {
		t.Fatal(err)
	}
	wrong := s
	wrong.Getenv = func(k string) string {
		if k == reposettings.PassphraseEnv {
			return "not the passphrase at all"
		}
		return ""
	}
	dest := filepath.Join(t.TempDir(), "pg_wal", "RECOVERYHISTORY")
	_ = os.MkdirAll(filepath.Dir(dest), 0o700)
	res, err := repoops.WALFetch(ctx, wrong, repoops.WALFetchRequest{Name: "00000002.history", Dest: dest})
	if err != nil || res.Found {
		t.Fatalf("fetch of a history file the archive lacks, with a wrong key: found %v, %v; want a quiet not-found", res.Found, err)
	}
	if _, err := repoops.WALFetch(ctx, wrong, repoops.WALFetchRequest{Name: "000000010000000000000003", Dest: dest}); err == nil {
		t.Fatal("an archived segment was fetched with a wrong passphrase")
	}
	res, err = repoops.WALFetch(ctx, s, repoops.WALFetchRequest{Name: "000000010000000000000003", Dest: dest})
	if err != nil || !res.Found {
		t.Fatalf("fetch of the archived segment: found %v, %v", res.Found, err)
	}
}

// A promotion reads the current timeline's history file through
// restore_command; a standby has it in pg_wal, and that copy is served
// without the repository (here: a passphrase that would fail).
func TestWALFetchServesAHistoryFileFromPgWal(t *testing.T) {
	ctx := context.Background()
	s := testSettings(t)
	s.Getenv = func(string) string { return "" }
	pgwal := t.TempDir()
	body := []byte("1\t0/3000060\tno recovery target specified\n")
	if err := os.WriteFile(filepath.Join(pgwal, "00000002.history"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(pgwal, "RECOVERYHISTORY")
	res, err := repoops.WALFetch(ctx, s, repoops.WALFetchRequest{Name: "00000002.history", Dest: dest})
	got, _ := os.ReadFile(dest)
	if err != nil || !res.Found || string(got) != string(body) {
		t.Fatalf("fetch of a history file in pg_wal: found %v, %v, content %q", res.Found, err, got)
	}
}
