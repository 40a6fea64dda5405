package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pgguard/pgguard/internal/osuser"
)

// roots are the target directory and the tablespace locations, opened
// once as os.Roots: every path a restore writes is resolved beneath one of
// them, so that no symbolic link, whoever made it, takes a write or a
// removal outside (a pg_tblspc link is never followed by path: the files
// under pg_tblspc/<oid>/ go through the location's own root). Every call
// on them runs through the writer's privdrop.FS, as the database account
// when the restore runs as root.
type roots struct {
	dir *os.Root
	spc map[string]*os.Root // tablespace oid -> its (absolute) location
}

// resolve returns the root rel (slash-separated, relative to the target
// directory) lies beneath and its path there.
func (r *roots) resolve(rel string) (*os.Root, string) {
	if rest, ok := strings.CutPrefix(rel, "pg_tblspc/"); ok {
		oid, inner, _ := strings.Cut(rest, "/")
		if loc, ok := r.spc[oid]; ok && inner != "" {
			return loc, filepath.FromSlash(inner)
		}
	}
	return r.dir, filepath.FromSlash(rel)
}

func (r *roots) close() {
	if r.dir != nil {
		r.dir.Close()
	}
	for _, s := range r.spc {
		s.Close()
	}
}

// openRoots creates, as the caller (root when it must), the target
// directory and the tablespace locations that do not exist yet, giving
// each directory it creates (and only those) to acct, and opens them.
// checkTargetOwner and checkTablespaces have refused any that exists and
// is not acct's.
func openRoots(dir string, l *layout, acct osuser.Account) (*roots, error) {
	r := &roots{spc: map[string]*os.Root{}}
	if err := acct.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create target directory: %w", err)
	}
	var err error
	if r.dir, err = openOwnedRoot(dir, acct); err != nil {
		return nil, fmt.Errorf("target directory: %w", err)
	}
	for oid, loc := range l.tablespaces {
		if !filepath.IsAbs(loc) {
			continue // an in-place tablespace lives inside the data directory
		}
		if err := acct.MkdirAll(loc, 0o700); err != nil {
			r.close()
			return nil, fmt.Errorf("create tablespace directory %s: %w", loc, err)
		}
		if r.spc[oid], err = openOwnedRoot(loc, acct); err != nil {
			r.close()
			return nil, fmt.Errorf("tablespace %s: %w", oid, err)
		}
	}
	return r, nil
}

// openOwnedRoot opens dir, which must be a directory and no link, and,
// when acct needs a switch, acct's (checked again on what was opened: the
// check before may have looked at something else).
func openOwnedRoot(dir string, acct osuser.Account) (*os.Root, error) {
	fi, err := statFor(acct)(dir)
	if err != nil {
		return nil, err
	}
	if err := ownedDir(dir, fi, acct); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if got, err := r.Stat("."); err != nil || !os.SameFile(fi, got) {
		r.Close()
		return nil, fmt.Errorf("%s changed while it was opened: run the restore again", dir)
	}
	return r, nil
}

// statFor is how a directory handed to the restore is looked at: as it
// is (a link is refused) when the restore runs as root for acct, through
// links otherwise (the kernel keeps an unprivileged restore to its own).
func statFor(acct osuser.Account) func(string) (fs.FileInfo, error) {
	if acct.Switch {
		return os.Lstat
	}
	return os.Stat
}

// ownedDir refuses fi (of path p) unless it is a directory, no link, and,
// when acct needs a switch, acct's.
func ownedDir(p string, fi fs.FileInfo, acct osuser.Account) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link: name the directory itself", p)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	if !acct.Switch {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != acct.UID {
		uid := -1
		if ok {
			uid = int(st.Uid)
		}
		return fmt.Errorf("%s is owned by uid %d, not by %s (uid %d): a restore run as root does not take over a directory of someone else's; chown it to %s, or name a new directory", p, uid, acct.Name, acct.UID, acct.Name)
	}
	return nil
}

// checkTargetOwner refuses, before anything is written, a target
// directory that exists and is not a directory of acct's (when the
// restore runs as root for acct).
func checkTargetOwner(dir string, acct osuser.Account) error {
	fi, err := statFor(acct)(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("target directory: %w", err)
	}
	if err := ownedDir(dir, fi, acct); err != nil {
		return fmt.Errorf("target directory %w", err)
	}
	return nil
}
