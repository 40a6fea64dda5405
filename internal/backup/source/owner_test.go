package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/osuser"
)

// A backup follows a pg_tblspc link only into a directory the data
// directory's owner owns: a link redirected to a root-owned directory (made
// by a database superuser through COPY ... PROGRAM, say) would otherwise
// make a backup run as root copy that directory into the repository (issue
// 13 item 4).
func TestWalkRefusesATablespaceLinkIntoAForeignDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it makes directories owned by another account")
	}
	acct, err := osuser.Resolve("")
	if err != nil {
		t.Skipf("no database account to own the data directory: %v", err)
	}
	base := t.TempDir()
	data := filepath.Join(base, "data")
	own := filepath.Join(base, "ts")
	foreign := filepath.Join(base, "etc-like")
	for _, d := range []string{filepath.Join(data, "pg_tblspc"), filepath.Join(own, "PG_15_202209061"), foreign} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "shadow"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{data, own} {
		if err := acct.ChownTree(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(own, filepath.Join(data, "pg_tblspc", "16384")); err != nil {
		t.Fatal(err)
	}
	if _, err := Walk(context.Background(), data); err != nil {
		t.Fatalf("a tablespace the account owns: %v", err)
	}
	if err := os.Symlink(foreign, filepath.Join(data, "pg_tblspc", "16385")); err != nil {
		t.Fatal(err)
	}
	entries, err := Walk(context.Background(), data)
	if err == nil || !strings.Contains(err.Error(), "refusing to back it up") {
		t.Fatalf("a tablespace link into a root-owned directory: %d entries, %v; want a refusal", len(entries), err)
	}
}
