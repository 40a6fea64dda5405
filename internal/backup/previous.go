package backup

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/pgguard/pgguard/internal/backup/source"
	"github.com/pgguard/pgguard/internal/repo"
)

// NewestBackup returns the newest physical backup of system systemID in r,
// or nil when there is none. Manifests that cannot be read are an error: an
// incremental must not silently fall back to an older base.
func NewestBackup(ctx context.Context, r *repo.Repository, systemID uint64) (*repo.Manifest, error) {
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(ids) - 1; i >= 0; i-- {
		h, err := r.LoadHeader(ctx, ids[i])
		if err != nil {
			return nil, fmt.Errorf("find previous backup: %w", err)
		}
		if h.SystemID == systemID && (h.Kind == repo.KindFull || h.Kind == repo.KindIncr) {
			m, err := r.LoadManifest(ctx, ids[i])
			if err != nil {
				return nil, fmt.Errorf("find previous backup: %w", err)
			}
			return m, nil
		}
	}
	return nil, nil
}

// PreviousOf describes m as the base of an incremental read: its start and
// each regular file's stored size and walked modification time.
func PreviousOf(m *repo.Manifest) *source.Previous {
	p := &source.Previous{StartLSN: m.StartLSN, StartTime: m.StartTime, Timeline: m.Timeline,
		Files: make(map[string]source.PrevFile, len(m.Files))}
	for _, f := range m.Files {
		if fs.FileMode(f.Mode).IsRegular() {
			p.Files[f.Path] = source.PrevFile{Size: f.Size, ModTime: f.MTime}
		}
	}
	return p
}
