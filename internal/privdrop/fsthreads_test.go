package privdrop

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pgguard/pgguard/internal/osuser"
)

// A process that stays root writes through FS as the database account:
// what it creates is the account's, a root-owned directory refuses it
// (no CAP_DAC_OVERRIDE left on the thread), and the rest of the process
// is still root.
func TestFSWritesAsTheAccount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it checks that a root process writes through FS as another account")
	}
	acct, err := osuser.Resolve("")
	if err != nil {
		t.Fatalf("resolve the database account: %v", err)
	}
	base := t.TempDir() // root's, 0700
	own := filepath.Join(base, "own")
	if err := os.Mkdir(own, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(own, acct.UID, acct.GID); err != nil {
		t.Fatal(err)
	}
	rootDir := filepath.Join(base, "root-owned")
	if err := os.Mkdir(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := NewFS(acct, 2)
	if err != nil {
		t.Fatalf("NewFS: %v", err)
	}
	defer fsys.Close()
	// The account cannot search base (root's, 0700): paths are resolved
	// from descriptors opened as root, as a restore does with os.Root.
	r, err := os.OpenRoot(own)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := fsys.Do(func() error { return r.WriteFile("made", []byte("x"), 0o600) }); err != nil {
		t.Fatalf("create a file in the account's directory through FS: %v", err)
	}
	fi, err := os.Lstat(filepath.Join(own, "made"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != acct.UID || int(st.Gid) != acct.GID {
		t.Fatalf("a file created through FS is owned by %d:%d, want the account's %d:%d", st.Uid, st.Gid, acct.UID, acct.GID)
	}
	err = fsys.Do(func() error { return os.WriteFile(filepath.Join(rootDir, "x"), nil, 0o600) })
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("writing into a root-owned 0755 directory through FS: %v, want permission denied", err)
	}
	if _, err := os.Lstat(filepath.Join(rootDir, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused write left a file behind: %v", err)
	}
	if err := os.WriteFile(filepath.Join(rootDir, "y"), nil, 0o600); err != nil {
		t.Fatalf("the rest of the process is no longer root: %v", err)
	}
}
