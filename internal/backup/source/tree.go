package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Tree is a data directory opened for a backup: the directory and each
// tablespace location are held open, checked once, and every file is
// opened beneath one of them without following any symbolic link
// (openat2 RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH). A backup often runs as
// root while a database superuser can make links as the database account
// (COPY … PROGRAM): a link swapped in after the checks then fails the
// open instead of making root read what it points to.
type Tree struct {
	DataDir string
	owner   uint32
	group   uint32
	data    int               // descriptor of DataDir
	spc     map[string]int    // tablespace oid -> descriptor of its location
	spcDir  map[string]string // tablespace oid -> its location
}

// OpenTree opens dataDir and the location of every tablespace linked from
// its pg_tblspc. A link is followed only to a directory (itself no link)
// owned by the data directory's owner; anything else is refused with an
// error naming the link.
func OpenTree(dataDir string) (*Tree, error) {
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("%s is not a PostgreSQL data directory (no readable PG_VERSION): %w", dataDir, err)
	}
	t := &Tree{DataDir: dataDir, data: -1, spc: map[string]int{}, spcDir: map[string]string{}}
	fd, st, err := openDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("open data directory: %w", err)
	}
	t.data, t.owner, t.group = fd, st.Uid, st.Gid
	links, err := os.ReadDir(filepath.Join(dataDir, "pg_tblspc"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Close()
		return nil, fmt.Errorf("list tablespaces: %w", err)
	}
	for _, l := range links {
		if l.Type()&fs.ModeSymlink == 0 {
			continue // an in-place tablespace: a directory inside PGDATA
		}
		if err := t.openTablespace(l.Name()); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// openTablespace checks and opens the location pg_tblspc/oid links to.
func (t *Tree) openTablespace(oid string) error {
	link := filepath.Join(t.DataDir, "pg_tblspc", oid)
	refuse := func(why string) error {
		return fmt.Errorf("tablespace link %s: %s: refusing to back it up; a tablespace location must be a directory owned by the database account (uid %d), reached by the link itself: point the link at the tablespace's real directory and give it to that account, or drop the tablespace", link, why, t.owner)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return fmt.Errorf("read tablespace link %s: %w", link, err)
	}
	if !filepath.IsAbs(target) {
		return refuse(fmt.Sprintf("it points to %q, not an absolute path (PostgreSQL makes absolute ones)", target))
	}
	fi, err := os.Lstat(target)
	if err != nil {
		return refuse(fmt.Sprintf("its location %s cannot be read: %v", target, err))
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return refuse(fmt.Sprintf("it points to %s, itself a symbolic link (a chain of links)", target))
	}
	if !fi.IsDir() {
		return refuse(fmt.Sprintf("it points to %s, which is not a directory", target))
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != t.owner {
		return refuse(fmt.Sprintf("it points to %s, owned by uid %d, not by the data directory's owner (uid %d)", target, uid, t.owner))
	}
	fd, st, err := openDir(target)
	if err != nil {
		return refuse(err.Error())
	}
	if st.Uid != t.owner || uint64(st.Dev) != uint64(fi.Sys().(*syscall.Stat_t).Dev) || st.Ino != fi.Sys().(*syscall.Stat_t).Ino {
		unix.Close(fd)
		return refuse(fmt.Sprintf("its location %s changed while it was opened", target))
	}
	t.spc[oid], t.spcDir[oid] = fd, target
	return nil
}

// openDir opens a directory (following links in its path: the caller
// checked the last one) and returns its status.
func openDir(dir string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, fmt.Errorf("stat %s: %w", dir, err)
	}
	return fd, st, nil
}

// Open opens the file at rel (slash-separated, relative to PGDATA; a
// tablespace's files under pg_tblspc/<oid>/) for reading, beneath the data
// directory or the tablespace's location, following no symbolic link.
func (t *Tree) Open(rel string) (*os.File, error) {
	dir, sub := t.data, rel
	if rest, ok := strings.CutPrefix(rel, "pg_tblspc/"); ok {
		oid, inner, _ := strings.Cut(rest, "/")
		if fd, ok := t.spc[oid]; ok {
			dir, sub = fd, inner
		}
	}
	if sub == "" {
		return nil, fmt.Errorf("open %s: not a file of the data directory", rel)
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
	}
	fd, err := unix.Openat2(dir, filepath.FromSlash(sub), &how)
	for err == unix.EINTR || err == unix.EAGAIN {
		fd, err = unix.Openat2(dir, filepath.FromSlash(sub), &how)
	}
	switch {
	case err == unix.ELOOP || err == unix.EXDEV:
		return nil, fmt.Errorf("open %s: it is reached through a symbolic link (made after the walk?): a backup follows no link inside the data directory but pg_tblspc's; remove the link and run the backup again", rel)
	case err == unix.ENOSYS:
		return nil, fmt.Errorf("open %s: the kernel has no openat2 (Linux 5.6 or later is needed to read a data directory without following links)", rel)
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(t.DataDir, filepath.FromSlash(rel))), nil
}

// ToolCredential is the account a tool reading the data directory
// (pg_waldump over pg_wal) runs as: the directory's owner and group, no
// supplementary groups, when this process is root and the owner is not;
// nil otherwise. Such a tool follows links, so it must not read as root.
func (t *Tree) ToolCredential() *syscall.Credential {
	if os.Geteuid() != 0 || t.owner == 0 {
		return nil
	}
	return &syscall.Credential{Uid: t.owner, Gid: t.group}
}

// Close closes the directories.
func (t *Tree) Close() error {
	if t.data >= 0 {
		unix.Close(t.data)
		t.data = -1
	}
	for oid, fd := range t.spc {
		unix.Close(fd)
		delete(t.spc, oid)
	}
	return nil
}
