package repo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

// WALInfo describes one archived WAL or history file.
type WALInfo struct {
	Name     string
	Timeline string
	// Archived is when the object was stored (the backend's modification
	// time): the WAL in a segment was written before it.
	Archived time.Time
	Size     int64
}

// IsHistory reports whether the file is a timeline history file.
func (w WALInfo) IsHistory() bool { return strings.HasSuffix(w.Name, ".history") }

// ListWALInfo lists every archived WAL and history file, oldest archive
// time first (names break ties).
func (r *Repository) ListWALInfo(ctx context.Context) ([]WALInfo, error) {
	var out []WALInfo
	err := r.be.List(ctx, "wal/", func(fi storage.FileInfo) error {
		name := fi.Name[strings.LastIndexByte(fi.Name, '/')+1:]
		if len(name) < 8 {
			return nil
		}
		out = append(out, WALInfo{Name: name, Timeline: name[:8], Archived: fi.ModTime, Size: fi.Size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list WAL: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Archived.Equal(out[j].Archived) {
			return out[i].Archived.Before(out[j].Archived)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
