package restore

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pgguard/pgguard/internal/repo"
)

// Names the backup driver stores beside the data files: PostgreSQL's
// backup_label and tablespace_map as pg_backup_stop returned them (never
// read from disk; see internal/backup/source).
const (
	backupLabelName   = "backup_label"
	tablespaceMapName = "tablespace_map"
	pgControlName     = "global/pg_control"
)

// kind of a manifest entry.
type kind int

const (
	kindRegular kind = iota
	kindDir
	kindSymlink
)

// entryKind reads the type from a manifest mode. Both Go's fs.FileMode
// bits and the Unix S_IFMT bits are understood, so the restore does not
// depend on which one the writer chose.
func entryKind(mode uint32) kind {
	fm := fs.FileMode(mode)
	switch {
	case fm&fs.ModeDir != 0 || mode&0o170000 == 0o040000:
		return kindDir
	case fm&fs.ModeSymlink != 0 || mode&0o170000 == 0o120000:
		return kindSymlink
	}
	return kindRegular
}

// entryPerm is the permission bits of a manifest mode; PostgreSQL wants
// owner-only access when the writer stored none.
func entryPerm(mode uint32, k kind) fs.FileMode {
	p := fs.FileMode(mode) & 0o777
	if p == 0 {
		if k == kindDir {
			return 0o700
		}
		return 0o600
	}
	return p
}

// layout is a manifest sorted into what restore does with each entry.
type layout struct {
	dirs        []repo.FileEntry
	links       []repo.FileEntry // symlinks, mostly pg_tblspc/<oid>
	files       []repo.FileEntry // regular data files, largest first
	control     *repo.FileEntry  // global/pg_control, written last
	label       *repo.FileEntry
	spcmap      *repo.FileEntry
	paths       map[string]bool // every path the backup has, directories implied
	totalBytes  int64
	tablespaces map[string]string // oid -> location to restore to (from tablespace_map, or remapped)
	remapped    map[string]bool
}

// planLayout sorts m's entries; tablespaceMap is the content of the
// backup's tablespace_map ("" when it has none).
func planLayout(m *repo.Manifest, tablespaceMap string) (*layout, error) {
	l := &layout{paths: map[string]bool{}, tablespaces: map[string]string{}, remapped: map[string]bool{}}
	for i := range m.Files {
		f := &m.Files[i]
		if f.Path == "" || path.IsAbs(f.Path) || strings.HasPrefix(path.Clean(f.Path), "..") || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("backup %s lists an unsafe path %q: the manifest is damaged", m.ID, f.Path)
		}
		for p := f.Path; p != "."; p = path.Dir(p) {
			l.paths[p] = true
		}
		switch entryKind(f.Mode) {
		case kindDir:
			l.dirs = append(l.dirs, *f)
			continue
		case kindSymlink:
			l.links = append(l.links, *f)
			continue
		}
		switch f.Path {
		case backupLabelName:
			l.label = f
			continue
		case tablespaceMapName:
			l.spcmap = f
			continue
		case pgControlName:
			l.control = f
		default:
			l.files = append(l.files, *f)
		}
		l.totalBytes += f.Size
	}
	if l.label == nil {
		return nil, fmt.Errorf("backup %s has no backup_label: it is not a physical backup this pgguard can restore", m.ID)
	}
	if l.control == nil {
		return nil, fmt.Errorf("backup %s has no global/pg_control: the backup is incomplete", m.ID)
	}
	sort.Slice(l.dirs, func(i, j int) bool { return l.dirs[i].Path < l.dirs[j].Path })
	sort.SliceStable(l.files, func(i, j int) bool { return l.files[i].Size > l.files[j].Size })
	for _, line := range strings.Split(tablespaceMap, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		oid, loc, ok := strings.Cut(line, " ")
		if !ok || oid == "" || loc == "" {
			return nil, fmt.Errorf("backup %s: tablespace_map line %q is not \"<oid> <path>\"", m.ID, line)
		}
		l.tablespaces[oid] = loc
	}
	return l, nil
}

// baseDirs are the directories PostgreSQL needs even when empty; they are
// created whether or not the manifest lists them.
var baseDirs = []string{
	"base", "global", "pg_commit_ts", "pg_dynshmem", "pg_logical", "pg_logical/mappings",
	"pg_logical/snapshots", "pg_multixact", "pg_multixact/members", "pg_multixact/offsets",
	"pg_notify", "pg_replslot", "pg_serial", "pg_snapshots", "pg_stat", "pg_stat_tmp",
	"pg_subtrans", "pg_tblspc", "pg_twophase", "pg_wal", "pg_wal/archive_status", "pg_xact",
}

// remap points tablespaces (by oid) at new absolute locations.
func (l *layout) remap(to map[string]string) error {
	for _, oid := range slices.Sorted(maps.Keys(to)) {
		loc := to[oid]
		if _, ok := l.tablespaces[oid]; !ok {
			return fmt.Errorf("tablespace %s to remap is not in the backup (it has: %s)", oid, strings.Join(slices.Sorted(maps.Keys(l.tablespaces)), ", "))
		}
		if !filepath.IsAbs(loc) || strings.ContainsAny(loc, "\n\r") {
			return fmt.Errorf("tablespace %s: new location %q must be an absolute path on one line", oid, loc)
		}
		l.tablespaces[oid], l.remapped[oid] = filepath.Clean(loc), true
	}
	return nil
}

// tablespaceMap is the tablespace_map to write: PostgreSQL recreates the
// pg_tblspc links from it at startup, so remapped locations must be in it.
func (l *layout) tablespaceMap(original []byte) []byte {
	if len(l.remapped) == 0 {
		return original
	}
	var b strings.Builder
	for _, oid := range slices.Sorted(maps.Keys(l.tablespaces)) {
		fmt.Fprintf(&b, "%s %s\n", oid, l.tablespaces[oid])
	}
	return []byte(b.String())
}
