package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// tempPrefix starts the name of every file Local writes before renaming it
// into place. Names with this prefix are never objects: List skips them and
// Save refuses them.
const tempPrefix = ".pgguard-tmp-"

// StaleTempAge is how old a leftover temporary file must be before
// RemoveStaleTemp deletes it; younger ones may belong to a Save in progress.
const StaleTempAge = time.Hour

// Local is a Backend on a directory of the local filesystem (or a mounted
// network filesystem). Object "a/b/c" is the file <root>/a/b/c.
type Local struct {
	root string
	// owner is the uid/gid new files and directories are given when this
	// process is root and the repository directory belongs to someone
	// else (the database account whose archive_command writes there too):
	// a backup run by root must not leave files the agent cannot read.
	owner *[2]int
}

// NewLocal returns a backend rooted at dir, creating dir if needed. dir must
// be an absolute path.
func NewLocal(dir string) (*Local, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("local repository %q: path must be absolute", dir)
	}
	root := filepath.Clean(dir)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, classifyFS("create directory", root, err)
	}
	l := &Local{root: root}
	if fi, err := os.Stat(root); err == nil && os.Geteuid() == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			l.owner = &[2]int{int(st.Uid), int(st.Gid)}
		}
	}
	return l, nil
}

// own gives path to the repository's owner (see Local.owner).
func (l *Local) own(path string) error {
	if l.owner == nil {
		return nil
	}
	return os.Lchown(path, l.owner[0], l.owner[1])
}

func (l *Local) Location() string { return l.root }

// validName rejects names that would escape the root, name a directory, or
// collide with our temporary files.
func validName(op, name string) error {
	if !fs.ValidPath(name) || name == "." {
		return Permanent(op, name, errors.New(`invalid object name: use "/"-separated relative names without "." or ".." elements`))
	}
	for _, elem := range strings.Split(name, "/") {
		if strings.HasPrefix(elem, tempPrefix) {
			return Permanent(op, name, fmt.Errorf("invalid object name: elements must not start with %q", tempPrefix))
		}
	}
	return nil
}

func (l *Local) path(name string) string {
	return filepath.Join(l.root, filepath.FromSlash(name))
}

func (l *Local) Save(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	if err := validName("save", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", name, err)
	}
	dst := l.path(name)
	dir := filepath.Dir(dst)
	if err := l.mkdirs(dir); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
			// Unlike S3, a directory tree cannot hold both "a" and "a/b".
			return Permanent("save", name, fmt.Errorf("%w (an existing object has the name of one of its directories)", err))
		}
		return classifyFS("save", name, err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return classifyFS("save", name, err)
	}
	tmp := f.Name()
	if err = l.own(tmp); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return classifyFS("save", name, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(&markedWriter{w: f}, &ctxReader{ctx: ctx, r: r})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("save %s: %w", name, ctxErr)
		}
		var we *writeError
		if errors.As(err, &we) {
			return classifyFS("save", name, we.err)
		}
		return Permanent("save", name, fmt.Errorf("read input: %w", err))
	}
	if size >= 0 && n != size {
		return Permanent("save", name, fmt.Errorf("read %d bytes, expected %d", n, size))
	}
	if err := f.Sync(); err != nil {
		return classifyFS("save", name, err)
	}
	if err := f.Close(); err != nil {
		return classifyFS("save", name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return classifyFS("save", name, err)
	}
	if err := syncDir(dir); err != nil {
		return classifyFS("save", name, err)
	}
	return nil
}

// mkdirs creates dir and its missing parents below the root and fsyncs the
// parent of every directory it created, so the new entries survive a crash.
func (l *Local) mkdirs(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	var created []string
	for d := dir; d != l.root && len(d) > len(l.root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range created {
		if err := l.own(d); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l *Local) Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := validName("load", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, classifyFS("load", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, classifyFS("load", name, err)
	}
	if fi.IsDir() {
		_ = f.Close()
		return nil, NotExist("load", name, nil)
	}
	if offset < 0 || offset > fi.Size() {
		_ = f.Close()
		return nil, Permanent("load", name, fmt.Errorf("offset %d outside object of %d bytes", offset, fi.Size()))
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, classifyFS("load", name, err)
	}
	rc := &localReader{f: f, name: name, r: f}
	if length > 0 {
		rc.r = io.LimitReader(f, length)
	}
	return rc, nil
}

// localReader classifies read errors so the retry wrapper can tell a
// transient I/O error from the end of the object.
type localReader struct {
	f    *os.File
	name string
	r    io.Reader
}

func (r *localReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = classifyFS("load", r.name, err)
	}
	return n, err
}

func (r *localReader) Close() error { return r.f.Close() }

func (l *Local) Stat(ctx context.Context, name string) (FileInfo, error) {
	if err := validName("stat", name); err != nil {
		return FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return FileInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	fi, err := os.Stat(l.path(name))
	if err != nil {
		return FileInfo{}, classifyFS("stat", name, err)
	}
	if !fi.Mode().IsRegular() {
		return FileInfo{}, NotExist("stat", name, nil)
	}
	return FileInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (l *Local) List(ctx context.Context, prefix string, fn func(FileInfo) error) error {
	// Start at the deepest directory the prefix names, so listing
	// "packs/ab" does not walk every other pack directory.
	start := l.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir := prefix[:i]
		if !fs.ValidPath(dir) || dir == "." {
			return nil // no valid object name starts with this prefix
		}
		start = l.path(dir)
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the prefix's directory is absent, or was just removed
			}
			return classifyFS("list", prefix, err)
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return Permanent("list", prefix, err)
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if p == l.root || p == start {
				return nil
			}
			dirName := name + "/"
			if !strings.HasPrefix(dirName, prefix) && !strings.HasPrefix(prefix, dirName) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we listed
			}
			return classifyFS("list", name, err)
		}
		return fn(FileInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	return err
}

func (l *Local) Remove(ctx context.Context, name string) error {
	if err := validName("remove", name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	p := l.path(name)
	fi, err := os.Lstat(p)
	if err != nil {
		return classifyFS("remove", name, err)
	}
	if fi.IsDir() {
		return NotExist("remove", name, nil)
	}
	if err := os.Remove(p); err != nil {
		return classifyFS("remove", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return classifyFS("remove", name, err)
	}
	return nil
}

// RemoveStaleTemp deletes temporary files left behind by Saves that crashed,
// if they were last modified more than maxAge before now (use StaleTempAge
// unless you know no Save runs concurrently). It returns how many it removed.
func (l *Local) RemoveStaleTemp(ctx context.Context, now time.Time, maxAge time.Duration) (int, error) {
	removed := 0
	err := filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return classifyFS("remove stale temp", p, err)
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone already
		}
		if now.Sub(fi.ModTime()) < maxAge {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return classifyFS("remove stale temp", p, err)
		}
		removed++
		return nil
	})
	return removed, err
}

// ctxReader stops a copy as soon as ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// markedWriter marks errors of the destination as writeError so Save can tell
// them from errors of the caller's reader.
type markedWriter struct{ w io.Writer }

func (m *markedWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = &writeError{err: err}
	}
	return n, err
}

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// classifyFS maps a filesystem error onto the storage error kinds.
func classifyFS(op, name string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	var we *writeError
	if errors.As(err, &we) {
		err = we.err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return NotExist(op, name, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return Permanent(op, name, fmt.Errorf("%w (free space or raise the quota on the repository filesystem)", err))
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return Permanent(op, name, fmt.Errorf("%w (check ownership and permissions of the repository directory)", err))
	case errors.Is(err, syscall.EROFS):
		return Permanent(op, name, fmt.Errorf("%w (the repository filesystem is mounted read-only)", err))
	case errors.Is(err, syscall.EIO), errors.Is(err, syscall.ESTALE), errors.Is(err, syscall.EAGAIN),
		errors.Is(err, syscall.EINTR), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTDOWN),
		errors.Is(err, syscall.ENOLCK):
		// Network filesystems report a lost server this way; it may come back.
		return Retryable(op, name, err)
	default:
		return Permanent(op, name, err)
	}
}
