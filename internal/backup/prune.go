package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/backup/source"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
)

// WALMode says which archived WAL prune removes.
type WALMode int

const (
	// WALKeepAll removes no WAL.
	WALKeepAll WALMode = iota
	// WALCovered removes WAL older than the start of the oldest kept
	// backup: no kept backup can use it.
	WALCovered
	// WALDays is WALCovered, but WAL archived within Days days stays too.
	WALDays
)

// RetentionPolicy says what prune keeps.
type RetentionPolicy struct {
	// Keep the newest Keep backups (at least 1).
	Keep int
	// KeepFor also keeps every backup that started within this duration
	// (0: count only).
	KeepFor time.Duration
	WAL     WALMode
	WALDays int
}

// ParseWALRule reads "keep-all", "covered" or "days:N".
func ParseWALRule(s string) (WALMode, int, error) {
	switch {
	case s == "keep-all":
		return WALKeepAll, 0, nil
	case s == "covered":
		return WALCovered, 0, nil
	case strings.HasPrefix(s, "days:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "days:"))
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("WAL rule %q: days must be a whole number of days, e.g. days:7", s)
		}
		return WALDays, n, nil
	}
	return 0, 0, fmt.Errorf("WAL rule %q: want keep-all, covered or days:N", s)
}

// Validate reports a policy a person must fix.
func (p RetentionPolicy) Validate() error {
	if p.Keep < 1 {
		return fmt.Errorf("keep %d: prune keeps at least the newest backup; use --keep 1 or more", p.Keep)
	}
	if p.KeepFor < 0 {
		return errors.New("keep-days must not be negative")
	}
	return nil
}

// BackupInfo is what planning needs to know about one backup.
type BackupInfo struct {
	ID        string
	StartTime time.Time
	// StartWAL is the segment the backup starts in (from backup_label);
	// empty for a backup that needs no WAL (logical).
	StartWAL string
}

// WALInfo is one archived WAL file.
type WALInfo struct {
	Name    string
	ModTime time.Time // when it was archived
}

// PrunePlan is what prune removes.
type PrunePlan struct {
	Keep          []string
	DeleteBackups []string
	DeleteWAL     []string
}

// PlanPrune decides, without I/O, which backups and WAL files to remove.
// WAL is compared by its position (log and segment number, any timeline)
// with the oldest kept backup's start segment; history files are always
// kept (they are tiny and every later timeline needs them).
func PlanPrune(backups []BackupInfo, wal []WALInfo, p RetentionPolicy, now time.Time) PrunePlan {
	var plan PrunePlan
	bs := slices.Clone(backups)
	// By start time: ids made before they carried milliseconds sort only
	// to the second.
	slices.SortFunc(bs, func(a, b BackupInfo) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	oldestWAL := ""
	for i, b := range bs {
		newest := len(bs) - i
		keep := newest <= p.Keep || (p.KeepFor > 0 && now.Sub(b.StartTime) < p.KeepFor)
		if !keep {
			plan.DeleteBackups = append(plan.DeleteBackups, b.ID)
			continue
		}
		plan.Keep = append(plan.Keep, b.ID)
		if pos := walPosition(b.StartWAL); pos != "" && (oldestWAL == "" || pos < oldestWAL) {
			oldestWAL = pos
		}
	}
	if p.WAL == WALKeepAll || oldestWAL == "" {
		return plan
	}
	for _, w := range wal {
		pos := walPosition(w.Name)
		if pos == "" || pos >= oldestWAL {
			continue
		}
		if p.WAL == WALDays && now.Sub(w.ModTime) < time.Duration(p.WALDays)*24*time.Hour {
			continue
		}
		plan.DeleteWAL = append(plan.DeleteWAL, w.Name)
	}
	return plan
}

// walPosition is the log and segment part of a segment name (and of the
// .partial and .backup files named after a segment), "" for history files
// and anything else.
func walPosition(name string) string {
	if len(name) < 24 {
		return ""
	}
	for _, c := range name[:24] {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return ""
		}
	}
	return name[8:24]
}

// PruneResult is what Prune did.
type PruneResult struct {
	Plan PrunePlan
	GC   repo.GCStats
}

// Prune removes the backups the policy does not keep, then the WAL no kept
// backup needs, then the blocks nothing references, all under the exclusive
// repository lock. Manifests go first, so an interruption leaves at worst
// unreferenced data that the next prune removes.
func Prune(ctx context.Context, r *repo.Repository, p RetentionPolicy, now time.Time) (PruneResult, error) {
	var res PruneResult
	if err := p.Validate(); err != nil {
		return res, err
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return res, fmt.Errorf("lock repository: %w", err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return res, err
	}
	infos := make([]BackupInfo, 0, len(ids))
	for _, id := range ids {
		m, err := r.LoadManifest(ctx, id)
		if err != nil {
			return res, fmt.Errorf("read backup %s (fix or delete it before pruning): %w", id, err)
		}
		bi := BackupInfo{ID: id, StartTime: m.StartTime}
		if m.Kind != repo.KindLogical {
			if bi.StartWAL, err = startWAL(ctx, r, m); err != nil {
				return res, err
			}
		}
		infos = append(infos, bi)
	}
	var wal []WALInfo
	err = r.Backend().List(ctx, "wal/", func(fi storage.FileInfo) error {
		wal = append(wal, WALInfo{Name: fi.Name[strings.LastIndexByte(fi.Name, '/')+1:], ModTime: fi.ModTime})
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("list WAL: %w", err)
	}
	res.Plan = PlanPrune(infos, wal, p, now)
	for _, id := range res.Plan.DeleteBackups {
		if err := r.DeleteManifest(ctx, id); err != nil {
			return res, err
		}
	}
	for _, name := range res.Plan.DeleteWAL {
		if err := r.RemoveWAL(ctx, name); err != nil && !storage.IsNotExist(err) {
			return res, err
		}
	}
	if res.GC, err = r.GC(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// startWAL reads the start segment from the backup's stored backup_label.
func startWAL(ctx context.Context, r *repo.Repository, m *repo.Manifest) (string, error) {
	rc, err := r.ReadFile(ctx, m, "backup_label")
	if err != nil {
		return "", fmt.Errorf("backup %s has no backup_label: %w", m.ID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return "", fmt.Errorf("read backup_label of %s: %w", m.ID, err)
	}
	li, err := source.ParseBackupLabel(string(b))
	if err != nil {
		return "", fmt.Errorf("backup %s: %w", m.ID, err)
	}
	return li.StartWAL, nil
}
