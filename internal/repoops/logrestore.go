package repoops

import (
	"context"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/logrestore"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/restore"
)

// RestoreWALRequest is a time range of archived WAL and where to put it.
type RestoreWALRequest struct {
	From, To  string // times, e.g. '2026-11-23 10:00:00+00' or RFC 3339
	TargetDir string
}

// RestoreWAL writes the archived WAL of a time range, with the timeline
// history files, into a directory, recovering nothing.
func RestoreWAL(ctx context.Context, s reposettings.Settings, req RestoreWALRequest) (logrestore.Selection, error) {
	var sel logrestore.Selection
	if req.From == "" || req.To == "" || req.TargetDir == "" {
		return sel, badinput.Errorf("restore wal needs --from, --to and --target-dir")
	}
	from, err := restore.ParseTime(req.From)
	if err != nil {
		return sel, badinput.Errorf("--from: %v", err)
	}
	to, err := restore.ParseTime(req.To)
	if err != nil {
		return sel, badinput.Errorf("--to: %v", err)
	}
	if !to.After(from) {
		return sel, badinput.Errorf("--to %s is not after --from %s", req.To, req.From)
	}
	err = s.With(ctx, func(r *repo.Repository) error {
		sel, err = logrestore.Run(ctx, r, from, to, req.TargetDir)
		return err
	})
	return sel, err
}
