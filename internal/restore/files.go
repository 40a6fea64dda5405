package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/privdrop"
	"github.com/pgguard/pgguard/internal/repo"
)

// writer restores the files of one manifest into dir.
type writer struct {
	r     *repo.Repository
	m     *repo.Manifest
	dir   string
	delta bool
	// acct gets every directory restore creates above the target and the
	// tablespace locations, so that the server can reach its files.
	acct osuser.Account
	// rt holds the target and the tablespace locations; every path-based
	// call on them runs through fs, as acct when the restore runs as root.
	rt *roots
	fs *privdrop.FS

	// window is the window size of a restore into an empty directory
	// (0: windowBytes).
	window int64

	written   atomic.Int64 // bytes written to disk
	fetched   atomic.Int64 // bytes read from the repository
	done      atomic.Int64 // bytes of files finished
	unchanged atomic.Int64 // files a delta left as they were
	progress  func(path string, size int64)
	// writeLimit, when set, paces the bytes written (BK-10).
	writeLimit func(n int) error
}

func (w *writer) target(rel string) string { return filepath.Join(w.dir, filepath.FromSlash(rel)) }

// do runs fn as the database account (see privdrop.FS).
func (w *writer) do(fn func() error) error { return w.fs.Do(fn) }

// open opens rel beneath its root as the database account; an existing
// link there is refused, not followed (the callers replace anything but a
// regular file first).
func (w *writer) open(rel string, flag int, perm fs.FileMode) (*os.File, error) {
	var f *os.File
	err := w.do(func() error {
		root, sub := w.rt.resolve(rel)
		if fi, err := root.Lstat(sub); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: a restore writes nothing through one", rel)
		}
		var err error
		f, err = root.OpenFile(sub, flag, perm)
		return err
	})
	if errors.Is(err, fs.ErrPermission) && w.acct.Switch {
		err = fmt.Errorf("%w (run as root, a restore writes as %s: give what is in the target directory to %s, or remove it)", err, w.acct.Name, w.acct.Name)
	}
	return f, err
}

// makeDirs creates the manifest's directories and PostgreSQL's fixed ones.
func (w *writer) makeDirs(l *layout) error {
	if err := w.do(func() error { return w.rt.dir.Chmod(".", 0o700) }); err != nil {
		return fmt.Errorf("target directory: %w", err)
	}
	for _, d := range baseDirs {
		if err := w.mkdir(d, 0o700); err != nil {
			return err
		}
	}
	for _, d := range l.dirs {
		if strings.HasPrefix(d.Path, "pg_tblspc/") {
			continue // created under the tablespace link, after it
		}
		if err := w.mkdir(d.Path, entryPerm(d.Mode, kindDir)); err != nil {
			return err
		}
	}
	return nil
}

// mkdir makes rel a directory; a file or link in its place is removed
// (the link itself, never what it points to).
func (w *writer) mkdir(rel string, perm fs.FileMode) error {
	return w.do(func() error {
		root, p := w.rt.resolve(rel)
		if fi, err := root.Lstat(p); err == nil && !fi.IsDir() {
			if err := root.Remove(p); err != nil {
				return fmt.Errorf("replace %s with a directory: %w", rel, err)
			}
		}
		if err := root.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", rel, err)
		}
		if err := root.Chmod(p, perm); err != nil {
			return fmt.Errorf("create directory %s: %w", rel, err)
		}
		return nil
	})
}

// makeLinks creates pg_tblspc/<oid> links to each tablespace's original
// location (from tablespace_map), and then the directories inside them.
// Other links (a pg_wal moved with initdb -X) are not followed to places
// outside the target directory: what they pointed to is restored as a
// plain directory (pg_wal has no content in a backup anyway); each such
// decision is returned as a note.
func (w *writer) makeLinks(l *layout) ([]string, error) {
	var notes []string
	for _, e := range l.links {
		oid, isTablespace := strings.CutPrefix(e.Path, "pg_tblspc/")
		loc, listed := l.tablespaces[oid]
		if !isTablespace || !listed || strings.Contains(oid, "/") {
			if err := w.mkdir(e.Path, 0o700); err != nil {
				return notes, err
			}
			notes = append(notes, fmt.Sprintf("%s was a symbolic link in the backed-up cluster; it is restored as a plain directory", e.Path))
			continue
		}
		// The location was created (for the account) and opened with the
		// target; here only the link in pg_tblspc is made.
		err := w.do(func() error {
			if cur, err := w.rt.dir.Readlink(e.Path); err == nil && cur == loc {
				return nil
			}
			if err := w.rt.dir.RemoveAll(e.Path); err != nil {
				return fmt.Errorf("replace tablespace link %s: %w", e.Path, err)
			}
			if err := w.rt.dir.Symlink(loc, e.Path); err != nil {
				return fmt.Errorf("create tablespace link %s: %w", e.Path, err)
			}
			return nil
		})
		if err != nil {
			return notes, err
		}
	}
	for _, d := range l.dirs {
		if strings.HasPrefix(d.Path, "pg_tblspc/") {
			if err := w.mkdir(d.Path, entryPerm(d.Mode, kindDir)); err != nil {
				return notes, err
			}
		}
	}
	return notes, nil
}

// checkTablespaces refuses to restore a tablespace into a non-empty
// location, original or remapped (unless a delta restore finds it already linked from the target
// directory, i.e. it is this cluster's own copy).
func checkTablespaces(dir string, l *layout, delta bool, acct osuser.Account) error {
	for _, oid := range slices.Sorted(maps.Keys(l.tablespaces)) {
		loc := l.tablespaces[oid]
		if !filepath.IsAbs(loc) {
			continue // an in-place tablespace lives inside the data directory
		}
		if err := ownedLocation(loc, acct); err != nil {
			return fmt.Errorf("tablespace %s: %w", oid, err)
		}
		if delta {
			if cur, err := os.Readlink(filepath.Join(dir, "pg_tblspc", oid)); err == nil && cur == loc {
				continue
			}
		}
		ents, err := os.ReadDir(loc)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("tablespace %s: read its original location %s: %w", oid, loc, err)
		}
		if len(ents) > 0 {
			if l.remapped[oid] {
				return fmt.Errorf("tablespace %s: new location %s is not empty: name an empty or new directory", oid, loc)
			}
			return fmt.Errorf("tablespace %s would be restored to its original location %s, which is not empty (is the original cluster on this host?): restore it elsewhere with --tablespace %s=DIR, or empty it", oid, loc, oid)
		}
	}
	return nil
}

// removeExtras deletes what the target directory has and the backup does
// not (a delta restore must leave exactly the backup): stale WAL in pg_wal,
// dropped relations, old signal and label files. Only the restore marker
// stays.
func (w *writer) removeExtras(l *layout) (int, error) {
	removed := 0
	type walkRoot struct {
		root   *os.Root
		prefix string // of the paths beneath it, relative to the target
	}
	roots := []walkRoot{{w.rt.dir, ""}}
	for _, oid := range slices.Sorted(maps.Keys(w.rt.spc)) {
		// Only a location the target already links to is this copy's
		// own; another's is left alone (makeLinks replaces the link, not
		// what it points to). The location is walked beneath its own
		// root: no link inside it is followed.
		if cur, err := os.Readlink(filepath.Join(w.dir, "pg_tblspc", oid)); err != nil || cur != l.tablespaces[oid] {
			continue
		}
		roots = append(roots, walkRoot{w.rt.spc[oid], "pg_tblspc/" + oid + "/"})
	}
	keep := map[string]bool{markerName: true, serverLogName: true}
	for _, d := range baseDirs {
		keep[d] = true
	}
	for _, wr := range roots {
		err := w.do(func() error {
			return fs.WalkDir(wr.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					if errors.Is(err, os.ErrNotExist) {
						return nil
					}
					return err
				}
				if p == "." {
					return nil
				}
				rel := wr.prefix + p
				if keep[rel] || l.paths[rel] {
					return nil
				}
				// A link is removed itself: WalkDir does not follow it,
				// and RemoveAll removes a link, not its target.
				if err := wr.root.RemoveAll(filepath.FromSlash(p)); err != nil {
					return err
				}
				removed++
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			})
		})
		if err != nil {
			return removed, fmt.Errorf("remove files the backup does not have: %w", err)
		}
	}
	return removed, nil
}

// restoreFiles restores files with channels workers in parallel: from the
// plan when there is one (a restore into an empty directory), else file by
// file (a delta restore, which compares each file before it fetches).
func (w *writer) restoreFiles(ctx context.Context, files []repo.FileEntry, plan *fullPlan, channels int) error {
	if plan != nil {
		return w.writePlan(ctx, plan, channels)
	}
	return w.writeFiles(ctx, files, channels)
}

// writeFiles restores files with channels workers in parallel, one file
// at a time each.
func (w *writer) writeFiles(ctx context.Context, files []repo.FileEntry, channels int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(channels, 1))
	for i := range files {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if gctx.Err() != nil {
				return nil // stopping: Wait or ctx has the error
			}
			return w.writeFile(gctx, &files[i])
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// writeFile restores one regular file, in place by block under delta.
func (w *writer) writeFile(ctx context.Context, f *repo.FileEntry) error {
	var err error
	if w.delta {
		var handled bool
		handled, err = w.deltaFile(ctx, f)
		if err == nil && !handled {
			err = w.fullFile(ctx, f)
		}
	} else {
		err = w.fullFile(ctx, f)
	}
	if err != nil {
		return err
	}
	w.report(f, true)
	return nil
}

// setMeta gives the complete file f, open as fh, the backup's mode and
// modification time. On the descriptor, the restore's own file, this
// needs no file thread.
func setMeta(f *repo.FileEntry, fh *os.File) error {
	if err := fh.Chmod(entryPerm(f.Mode, kindRegular)); err != nil {
		return err
	}
	if f.MTime.IsZero() {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(f.MTime.UnixNano()), unix.NsecToTimespec(f.MTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(fh.Fd())), ts, 0); err != nil {
		return fmt.Errorf("set modification time: %w", err)
	}
	return nil
}

// report counts a complete file (its bytes as done when countBytes).
func (w *writer) report(f *repo.FileEntry, countBytes bool) {
	if countBytes {
		w.done.Add(f.Size)
	}
	if w.progress != nil {
		w.progress(f.Path, f.Size)
	}
}

// fileDone gives a complete file that is no longer open the backup's mode
// and modification time, by path, and reports it.
func (w *writer) fileDone(f *repo.FileEntry, countBytes bool) error {
	err := w.do(func() error {
		root, p := w.rt.resolve(f.Path)
		if err := root.Chmod(p, entryPerm(f.Mode, kindRegular)); err != nil {
			return err
		}
		if !f.MTime.IsZero() {
			return root.Chtimes(p, f.MTime, f.MTime)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	if countBytes {
		w.done.Add(f.Size)
	}
	if w.progress != nil {
		w.progress(f.Path, f.Size)
	}
	return nil
}

// fullFile writes the whole file from the repository.
func (w *writer) fullFile(ctx context.Context, f *repo.FileEntry) error {
	// Anything but a regular file in its place (a link: the link itself)
	// is removed first.
	err := w.do(func() error {
		root, p := w.rt.resolve(f.Path)
		if err := root.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if fi, err := root.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			return root.RemoveAll(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	out, err := w.open(f.Path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	in, err := w.r.ReadFile(ctx, w.m, f.Path)
	if err != nil {
		out.Close()
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	n, err := io.Copy(out, in)
	in.Close()
	w.fetched.Add(n)
	w.written.Add(n)
	if err == nil && n == f.Size {
		err = setMeta(f, out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A cancelled read ends early without an error of its own.
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", f.Path, err)
	}
	if n != f.Size {
		return fmt.Errorf("restore %s: repository gave %d bytes, manifest says %d: run pgguard verify --backup %s", f.Path, n, f.Size, w.m.ID)
	}
	return nil
}

// readSmall returns a small file of the backup (label, map, config).
func readSmall(ctx context.Context, r *repo.Repository, m *repo.Manifest, path string) ([]byte, error) {
	in, err := r.ReadFile(ctx, m, path)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	b, err := io.ReadAll(io.LimitReader(in, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s from backup %s: %w", path, m.ID, err)
	}
	return b, nil
}

// ownedLocation refuses, when the restore runs as root for the database
// account, a tablespace location that exists and is not a directory that
// account owns: a restore run as root must not hand a place of someone
// else's (an empty root-owned directory, a link to one) to the database
// account, nor write into it. A location that does not exist is created
// for the account.
func ownedLocation(loc string, acct osuser.Account) error {
	if !acct.Switch {
		return nil
	}
	fi, err := os.Lstat(loc)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := ownedDir(loc, fi, acct); err != nil {
		return fmt.Errorf("location %w", err)
	}
	return nil
}
