package restore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// markerName is written into the target directory when a restore begins
// and removed when it ends, so that an interrupted restore is recognised
// (and resumed with Delta) even before pg_control is back.
const markerName = ".pgguard-restore"

type marker struct {
	BackupID string `json:"backup_id"`
	SystemID uint64 `json:"system_id,string"`
}

// dirState is what restore found in the target directory.
type dirState struct {
	exists   bool
	empty    bool
	systemID uint64 // from global/pg_control or the marker; 0 if none
	from     string // where systemID was read
}

// inspectDir looks at dir without changing it.
func inspectDir(dir string) (dirState, error) {
	var st dirState
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dirState{empty: true}, nil
	}
	if err != nil {
		return st, fmt.Errorf("read target directory: %w", err)
	}
	st.exists, st.empty = true, len(ents) == 0
	if st.empty {
		return st, nil
	}
	if id, err := readSystemID(filepath.Join(dir, "global", "pg_control")); err == nil {
		st.systemID, st.from = id, "global/pg_control"
		return st, nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, markerName)); err == nil {
		var m marker
		if json.Unmarshal(b, &m) == nil && m.SystemID != 0 {
			st.systemID, st.from = m.SystemID, "an interrupted restore of backup "+m.BackupID
		}
	}
	return st, nil
}

// readSystemID reads the system identifier, the first field of pg_control.
func readSystemID(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// checkTargetDir refuses a directory restore must not write into.
func checkTargetDir(dir string, st dirState, delta bool, systemID uint64) error {
	if err := checkNotRunning(dir); err != nil {
		return err
	}
	if st.empty {
		return nil
	}
	if !delta {
		return fmt.Errorf("target directory %s is not empty: restore into an empty directory, or pass --delta to rewrite an existing data directory of the same cluster in place", dir)
	}
	if st.systemID == 0 {
		return fmt.Errorf("target directory %s is not empty and holds no PostgreSQL data directory (no global/pg_control): --delta only rewrites a data directory of the same cluster; empty it or choose another directory", dir)
	}
	if st.systemID != systemID {
		return fmt.Errorf("target directory %s belongs to database system %d (per %s), the backup to system %d: --delta only rewrites a data directory of the same cluster; empty it or choose another directory", dir, st.systemID, st.from, systemID)
	}
	return nil
}

// checkNotRunning refuses a directory whose postmaster.pid names a live
// process.
func checkNotRunning(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return nil
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return nil
	}
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("a PostgreSQL server (pid %d, per %s/postmaster.pid) is running on the target directory: stop it before restoring over it", pid, dir)
	}
	return nil
}

func writeMarker(dir *os.Root, m marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeNew(dir, markerName, b)
}
