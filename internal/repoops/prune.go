package repoops

import (
	"context"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// PruneRequest is a retention policy as a person gives it.
type PruneRequest struct {
	Keep     int    // the newest N backups (at least 1)
	KeepDays int    // also every backup younger than D days
	WAL      string // keep-all, covered or days:N
	Now      time.Time
}

// Prune deletes the backups beyond the retention, the WAL no kept backup
// needs, and the blocks nothing references any more.
func Prune(ctx context.Context, s reposettings.Settings, req PruneRequest) (backup.PruneResult, error) {
	mode, days, err := backup.ParseWALRule(req.WAL)
	if err != nil {
		return backup.PruneResult{}, badinput.Wrap(err)
	}
	if req.KeepDays < 0 {
		return backup.PruneResult{}, badinput.Errorf("--keep-days %d: must not be negative", req.KeepDays)
	}
	pol := backup.RetentionPolicy{Keep: req.Keep, KeepFor: time.Duration(req.KeepDays) * 24 * time.Hour, WAL: mode, WALDays: days}
	if err := pol.Validate(); err != nil {
		return backup.PruneResult{}, badinput.Wrap(err)
	}
	var res backup.PruneResult
	err = s.With(ctx, func(r *repo.Repository) error {
		res, err = backup.Prune(ctx, r, pol, req.Now)
		return err
	})
	return res, err
}
