package source

import (
	"context"
	"io"
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

// The other ways out of the database account's tree are refused too: a
// link to a link (a chain), a link inside the tablespace's tree, and a
// link swapped in after the tree was opened (the open fails; the pinned
// location is the one read).
func TestTreeRefusesLinksOutOfTheAccountsTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it makes directories owned by another account")
	}
	acct, err := osuser.Resolve("")
	if err != nil {
		t.Fatalf("no database account to own the data directory: %v", err)
	}
	base := t.TempDir()
	data, own, foreign := filepath.Join(base, "data"), filepath.Join(base, "ts"), filepath.Join(base, "root-owned")
	for _, d := range []string{filepath.Join(data, "pg_tblspc"), filepath.Join(own, "PG_15_1", "5"), foreign} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for p, b := range map[string]string{filepath.Join(data, "PG_VERSION"): "15\n", filepath.Join(own, "PG_15_1", "5", "16384"): "pages", filepath.Join(foreign, "secret"): "root's"} {
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{data, own} {
		if err := acct.ChownTree(d); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(data, "pg_tblspc", "16384")
	relink := func(to string) {
		t.Helper()
		if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
	}
	chain := filepath.Join(base, "chain")
	if err := os.Symlink(own, chain); err != nil {
		t.Fatal(err)
	}
	relink(chain)
	if _, err := Walk(context.Background(), data); err == nil || !strings.Contains(err.Error(), "chain of links") || !strings.Contains(err.Error(), link) {
		t.Fatalf("a tablespace link to a link: %v; want a refusal naming the link and the chain", err)
	}

	relink(own)
	inner := filepath.Join(own, "PG_15_1", "5", "16385")
	if err := os.Symlink(filepath.Join(foreign, "secret"), inner); err != nil {
		t.Fatal(err)
	}
	if _, err := Walk(context.Background(), data); err == nil || !strings.Contains(err.Error(), "pg_tblspc/16384/PG_15_1/5/16385 is a symbolic link") {
		t.Fatalf("a link inside the tablespace's tree: %v; want a refusal naming it", err)
	}
	if err := os.Remove(inner); err != nil {
		t.Fatal(err)
	}

	tree, err := OpenTree(data)
	if err != nil {
		t.Fatalf("open the account's tree: %v", err)
	}
	defer tree.Close()
	// After the checks, a file becomes a link to root's file, and the
	// tablespace link is pointed at root's directory.
	rel := "pg_tblspc/16384/PG_15_1/5/16384"
	if err := os.Rename(filepath.Join(own, "PG_15_1", "5", "16384"), filepath.Join(own, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(foreign, "secret"), filepath.Join(own, "PG_15_1", "5", "16384")); err != nil {
		t.Fatal(err)
	}
	if f, err := tree.Open(rel); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		if f != nil {
			f.Close()
		}
		t.Fatalf("open of a file swapped for a link to root's file: %v; want a refusal", err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "PG_15_1"), []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	relink(foreign)
	if err := os.Remove(filepath.Join(own, "PG_15_1", "5", "16384")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(own, "moved"), filepath.Join(own, "PG_15_1", "5", "16384")); err != nil {
		t.Fatal(err)
	}
	f, err := tree.Open(rel)
	if err != nil {
		t.Fatalf("open through the pinned location after the link moved: %v", err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "pages" {
		t.Fatalf("read %q after the link was pointed at root's directory, want the tablespace's own file", b)
	}
	if _, err := Walk(context.Background(), data); err == nil || !strings.Contains(err.Error(), "owned by uid 0") {
		t.Fatalf("a new walk after the link was pointed at root's directory: %v; want a refusal naming the owner", err)
	}
}
