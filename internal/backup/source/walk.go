package source

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Entry is one item of a data directory as the backup sees it.
type Entry struct {
	// Path is slash-separated and relative to PGDATA. Files inside a
	// tablespace appear under its link: "pg_tblspc/16390/PG_15_…/5/16384".
	Path    string
	Mode    fs.FileMode // type bits and permissions
	Size    int64       // at walk time; the file may change while it is read
	ModTime time.Time
	// LinkTarget is the target of a symlink (pg_tblspc entries, or a
	// symlinked pg_wal), empty otherwise.
	LinkTarget string
}

// IsRegular reports whether the entry is a regular file.
func (e Entry) IsRegular() bool { return e.Mode.IsRegular() }

// Directories whose contents are never backed up (basebackup.c
// excludeDirContents, plus pg_wal which is taken from the WAL archive). The
// directory itself is kept so that the restored cluster has it.
var excludeDirContents = map[string]bool{
	"pg_stat_tmp":  true,
	"pg_replslot":  true,
	"pg_dynshmem":  true,
	"pg_notify":    true,
	"pg_serial":    true,
	"pg_snapshots": true,
	"pg_subtrans":  true,
	"pg_wal":       true,
}

// Files never backed up from disk (basebackup.c excludeFiles). backup_label
// and tablespace_map come from pg_backup_stop instead; a file of that name
// on disk belongs to some other backup.
var excludeFiles = map[string]bool{
	"postmaster.pid":           true,
	"postmaster.opts":          true,
	"postgresql.auto.conf.tmp": true,
	"backup_label":             true,
	"backup_label.old":         true,
	"tablespace_map":           true,
	"tablespace_map.old":       true,
	"backup_manifest":          true,
	"backup_manifest.tmp":      true,
	"current_logfiles.tmp":     true,
}

// Excluded reports whether rel (slash-separated, relative to PGDATA) is left
// out of a backup, following pg_basebackup's rules. Directories named in
// excludeDirContents are kept themselves (their contents are excluded).
func Excluded(rel string, isDir bool) bool {
	base := path.Base(rel)
	if strings.HasPrefix(base, "pgsql_tmp") || base == "pg_internal.init" {
		return true
	}
	dir := path.Dir(rel)
	if dir == "." && !isDir {
		if excludeFiles[base] || strings.HasSuffix(base, ".signal") {
			return true
		}
	}
	if excludeDirContents[dir] {
		// pg_wal keeps its archive_status directory, emptied.
		return !(dir == "pg_wal" && base == "archive_status" && isDir)
	}
	if dir == "pg_wal/archive_status" {
		return true
	}
	return false
}

// relFileRe matches relation data files: relfilenode, optional fork suffix,
// optional segment number.
var relFileRe = regexp.MustCompile(`^([0-9]+)(?:_(fsm|vm|init))?(?:\.([0-9]+))?$`)

// RelFile identifies one segment file of one relation fork.
type RelFile struct {
	Tablespace  uint32 // 1663 pg_default, 1664 pg_global, else the tablespace OID
	Database    uint32 // 0 for shared catalogs in global/
	RelFileNode uint32
	Fork        string // "main", "fsm", "vm", "init"
	Segment     uint32 // 1 GB segment number
}

// ParseRelFile recognises rel as a relation data file, whose pages carry
// checksums and LSNs: global/N, base/D/N, pg_tblspc/T/PG_x/D/N, with an
// optional _fsm/_vm/_init fork and .S segment suffix.
func ParseRelFile(rel string) (RelFile, bool) {
	parts := strings.Split(rel, "/")
	var r RelFile
	var name string
	switch {
	case len(parts) == 2 && parts[0] == "global":
		r.Tablespace, name = 1664, parts[1]
	case len(parts) == 3 && parts[0] == "base":
		if !parseUint32(parts[1], &r.Database) {
			return RelFile{}, false
		}
		r.Tablespace, name = 1663, parts[2]
	case len(parts) == 5 && parts[0] == "pg_tblspc" && strings.HasPrefix(parts[2], "PG_"):
		if !parseUint32(parts[1], &r.Tablespace) || !parseUint32(parts[3], &r.Database) {
			return RelFile{}, false
		}
		name = parts[4]
	default:
		return RelFile{}, false
	}
	m := relFileRe.FindStringSubmatch(name)
	if m == nil || !parseUint32(m[1], &r.RelFileNode) {
		return RelFile{}, false
	}
	r.Fork = "main"
	if m[2] != "" {
		r.Fork = m[2]
	}
	if m[3] != "" && !parseUint32(m[3], &r.Segment) {
		return RelFile{}, false
	}
	return r, true
}

func parseUint32(s string, out *uint32) bool {
	var v uint64
	if s == "" || len(s) > 10 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
		v = v*10 + uint64(c-'0')
	}
	if v > 1<<32-1 {
		return false
	}
	*out = uint32(v)
	return true
}

// Walk lists the data directory dataDir as a backup must copy it: excluded
// paths are dropped, tablespace links under pg_tblspc are reported as
// symlinks and followed (only into directories of the data directory's
// owner, see OpenTree), and forks of unlogged relations (those with an
// _init fork) other than the init fork are dropped, as pg_basebackup does.
// Files that vanish during the walk are skipped (dropped relations). The
// result is sorted by path.
func Walk(ctx context.Context, dataDir string) ([]Entry, error) {
	t, err := OpenTree(dataDir)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return t.Walk(ctx)
}

// Walk lists the tree as the package's Walk does.
func (t *Tree) Walk(ctx context.Context) ([]Entry, error) {
	var out []Entry
	if err := walkDir(ctx, t.DataDir, "", &out); err != nil {
		return nil, err
	}
	for _, oid := range sortedKeys(t.spcDir) {
		if err := walkDir(ctx, t.spcDir[oid], "pg_tblspc/"+oid, &out); err != nil {
			return nil, err
		}
	}
	out = dropUnloggedForks(out)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// walkDir walks the directory root and appends its entries named
// prefix/<relative path> (or relative to root when prefix is empty).
func walkDir(ctx context.Context, root, prefix string, out *[]Entry) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking: a dropped relation or temp file
			}
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(r)
		if prefix != "" {
			if rel == "." {
				rel = prefix
			} else {
				rel = prefix + "/" + rel
			}
		}
		if rel == "." {
			return nil
		}
		isDir := d.IsDir()
		if Excluded(rel, isDir) {
			if isDir {
				return fs.SkipDir
			}
			return nil
		}
		if prefix != "" && p == root {
			return nil // the tablespace link itself was listed by the main walk
		}
		info, err := os.Lstat(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return fmt.Errorf("stat %s: %w", p, err)
		}
		e := Entry{Path: rel, Mode: info.Mode(), Size: info.Size(), ModTime: info.ModTime()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if prefix != "" {
				// Inside a tablespace PostgreSQL makes no link: one there
				// was made by hand or by a database superuser, and a
				// backup run as root must not read where it leads.
				return fmt.Errorf("%s is a symbolic link inside tablespace location %s: refusing to back it up (PostgreSQL makes none there); remove it, or replace it with what it points to", rel, root)
			}
			if rel == "pg_wal" || strings.HasPrefix(rel, "pg_tblspc/") && strings.Count(rel, "/") == 1 {
				target, err := os.Readlink(p)
				if err != nil {
					return fmt.Errorf("read link %s: %w", p, err)
				}
				e.LinkTarget = target
				*out = append(*out, e)
			}
			// Other links (not created by PostgreSQL) are skipped, as
			// pg_basebackup warns and skips them.
			return nil
		case info.IsDir():
			*out = append(*out, e)
			return nil
		case info.Mode().IsRegular():
			*out = append(*out, e)
			return nil
		default:
			return nil // sockets, fifos: not PostgreSQL data
		}
	})
}

// dropUnloggedForks removes every fork except _init of relations that have
// an _init fork: unlogged relations are reset from the init fork at startup.
func dropUnloggedForks(entries []Entry) []Entry {
	type relKey struct {
		dir  string
		node uint32
	}
	unlogged := map[relKey]bool{}
	for _, e := range entries {
		if r, ok := ParseRelFile(e.Path); ok && r.Fork == "init" {
			unlogged[relKey{path.Dir(e.Path), r.RelFileNode}] = true
		}
	}
	if len(unlogged) == 0 {
		return entries
	}
	out := entries[:0]
	for _, e := range entries {
		if r, ok := ParseRelFile(e.Path); ok && r.Fork != "init" && unlogged[relKey{path.Dir(e.Path), r.RelFileNode}] {
			continue
		}
		out = append(out, e)
	}
	return out
}
