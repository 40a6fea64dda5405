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
	"github.com/pgguard/pgguard/internal/lsn"
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
	Kind      repo.Kind
	StartTime time.Time
	// StartWAL is the segment the backup starts in (from backup_label);
	// empty for a backup that needs no WAL (logical). StopWAL is the
	// segment its stop position is in.
	StartWAL string
	StopWAL  string
	// Pinned backups are never pruned and do not count against Keep.
	Pinned bool
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
	// A pinned backup keeps the WAL from its start to its stop (what a
	// restore of it needs), not everything after it.
	var pinnedWAL [][2]string
	unpinned := 0
	for _, b := range bs {
		if !b.Pinned {
			unpinned++
		}
	}
	seen := 0
	for _, b := range bs {
		if b.Pinned {
			plan.Keep = append(plan.Keep, b.ID)
			if start := lsn.SegmentPosition(b.StartWAL); start != "" {
				stop := lsn.SegmentPosition(b.StopWAL)
				if stop == "" {
					stop = start
				}
				pinnedWAL = append(pinnedWAL, [2]string{start, stop})
			}
			continue
		}
		seen++
		newest := unpinned - seen + 1
		keep := newest <= p.Keep || (p.KeepFor > 0 && now.Sub(b.StartTime) < p.KeepFor)
		if !keep {
			plan.DeleteBackups = append(plan.DeleteBackups, b.ID)
			continue
		}
		plan.Keep = append(plan.Keep, b.ID)
		if pos := lsn.SegmentPosition(b.StartWAL); pos != "" && (oldestWAL == "" || pos < oldestWAL) {
			oldestWAL = pos
		}
	}
	if p.WAL == WALKeepAll || oldestWAL == "" {
		return plan
	}
	for _, w := range wal {
		pos := lsn.SegmentPosition(w.Name)
		if pos == "" || pos >= oldestWAL {
			continue
		}
		if slices.ContainsFunc(pinnedWAL, func(r [2]string) bool { return pos >= r[0] && pos <= r[1] }) {
			continue
		}
		if p.WAL == WALDays && now.Sub(w.ModTime) < time.Duration(p.WALDays)*24*time.Hour {
			continue
		}
		plan.DeleteWAL = append(plan.DeleteWAL, w.Name)
	}
	return plan
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
	infos, err := loadInfos(ctx, r)
	if err != nil {
		return res, err
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

// loadInfos reads what planning needs about every backup, annotations
// included.
func loadInfos(ctx context.Context, r *repo.Repository) ([]BackupInfo, error) {
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return nil, err
	}
	ann, err := r.Annotations(ctx)
	if err != nil {
		return nil, err
	}
	infos := make([]BackupInfo, 0, len(ids))
	for _, id := range ids {
		m, err := r.LoadManifest(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read backup %s (fix or delete it first): %w", id, err)
		}
		bi := BackupInfo{ID: id, Kind: m.Kind, StartTime: m.StartTime, Pinned: ann[id].Pinned}
		if m.Kind != repo.KindLogical {
			if bi.StartWAL, err = StartWAL(ctx, r, m); err != nil {
				return nil, err
			}
			bi.StopWAL = stopWAL(bi.StartWAL, m.StartLSN, m.StopLSN)
		}
		infos = append(infos, bi)
	}
	return infos, nil
}

// stopWAL names the segment that holds stop, on the start segment's
// timeline, with the segment size that start and its segment name agree
// on ("" when none does).
func stopWAL(startWAL string, start, stop lsn.LSN) string {
	for size := uint64(lsn.MinSegmentSize); size <= lsn.MaxSegmentSize; size <<= 1 {
		if tli, segno, ok := lsn.ParseSegmentName(startWAL, size); ok && segno == start.Segment(size) {
			return lsn.SegmentName(tli, stop.Segment(size), size)
		}
	}
	return ""
}

// StartWAL reads the name of a physical backup's start segment from its
// stored backup_label: the oldest WAL a restore of it needs.
func StartWAL(ctx context.Context, r *repo.Repository, m *repo.Manifest) (string, error) {
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
