// Package pgbin names the PostgreSQL programs pgguard runs, so that a
// fork whose programs are renamed (KingbaseES's sys_rewind,
// sys_basebackup, its server "kingbase"...) runs as PostgreSQL does:
// postgresql.programs in node.yaml maps each program's PostgreSQL name to
// a file in bin_dir or an absolute path.
package pgbin

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Names are the programs pgguard runs, by their PostgreSQL names.
var Names = []string{"postgres", "initdb", "pg_basebackup", "pg_rewind", "pg_controldata", "pg_waldump", "pg_dump", "pg_restore", "pg_amcheck"}

// Tools locates the programs: Programs[name] (a file name in BinDir, or an
// absolute path) or BinDir/name.
type Tools struct {
	BinDir   string
	Programs map[string]string
}

// Path is where program name is.
func (t Tools) Path(name string) string {
	p := t.Programs[name]
	switch {
	case p == "":
		return filepath.Join(t.BinDir, name)
	case filepath.IsAbs(p):
		return p
	}
	return filepath.Join(t.BinDir, p)
}

// ServerComm is the command name (/proc/PID/stat, at most 15 bytes) a
// running postmaster of these tools has.
func (t Tools) ServerComm() string {
	c := filepath.Base(t.Path("postgres"))
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// Check refuses a program name pgguard does not run, and a program that
// is not an executable file; required lists the programs that must exist
// (others are checked only when renamed).
func (t Tools) Check(required ...string) error {
	var bad []string
	for name, p := range t.Programs {
		known := false
		for _, n := range Names {
			known = known || n == name
		}
		if !known {
			bad = append(bad, fmt.Sprintf("%q is not a program pgguard runs (%s)", name, strings.Join(Names, ", ")))
			continue
		}
		if strings.TrimSpace(p) == "" || strings.ContainsAny(p, "\x00\n") {
			bad = append(bad, fmt.Sprintf("%s: an empty or malformed file name", name))
			continue
		}
		required = append(required, name)
	}
	seen := map[string]bool{}
	for _, name := range required {
		if seen[name] {
			continue
		}
		seen[name] = true
		path := t.Path(name)
		st, err := os.Stat(path)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
		case !st.Mode().IsRegular() || st.Mode()&0o111 == 0:
			bad = append(bad, fmt.Sprintf("%s: %s is not an executable file", name, path))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}
