package repoops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// Backup-set management (issue 18 item 1): pin, unpin, label, delete.

// Annotated is a backup's annotation after a change.
type Annotated struct {
	ID string `json:"id"`
	repo.Annotation
	// Change says what changed: "pinned", "unpinned", `labelled "TEXT"`.
	Change string `json:"-"`
}

// Pin pins backup id for by (who asks) at at: prune never removes it and
// delete refuses it until it is unpinned.
func Pin(ctx context.Context, s reposettings.Settings, id, by string, at time.Time) (Annotated, error) {
	return annotate(ctx, s, id, func(a *repo.Annotation) string {
		a.Pinned, a.PinnedBy, a.PinnedAt = true, by, at.UTC()
		return "pinned"
	})
}

// Unpin unpins backup id: retention applies to it again.
func Unpin(ctx context.Context, s reposettings.Settings, id string) (Annotated, error) {
	return annotate(ctx, s, id, func(a *repo.Annotation) string {
		a.Pinned, a.PinnedBy, a.PinnedAt = false, "", time.Time{}
		return "unpinned"
	})
}

// Label sets backup id's label ("" removes it).
func Label(ctx context.Context, s reposettings.Settings, id, label string) (Annotated, error) {
	if err := repo.CheckLabel(label); err != nil {
		return Annotated{}, badinput.Wrap(err)
	}
	return annotate(ctx, s, id, func(a *repo.Annotation) string {
		a.Label = label
		return fmt.Sprintf("labelled %q", label)
	})
}

// annotate changes one backup's annotation under a shared repository lock
// (a delete or prune, which take it exclusively, cannot run meanwhile).
func annotate(ctx context.Context, s reposettings.Settings, id string, change func(*repo.Annotation) string) (Annotated, error) {
	res := Annotated{ID: id}
	err := s.With(ctx, func(r *repo.Repository) error {
		lock, err := r.Lock(ctx, false)
		if err != nil {
			return err
		}
		defer lock.Unlock(context.WithoutCancel(ctx))
		if res.Annotation, err = r.Annotation(ctx, id); err != nil {
			return err
		}
		res.Change = change(&res.Annotation)
		return r.SetAnnotation(ctx, id, res.Annotation)
	})
	return res, err
}

// DeleteRequest deletes one backup.
type DeleteRequest struct {
	ID   string
	Keep int // backups of the same family that must remain
	// CheckOnly answers the checks and changes nothing.
	CheckOnly bool
	// Confirm, when set, is asked once every check passed; false refuses.
	Confirm func() bool
}

// RefusedError is a delete a check refused; Checks says which failed. It
// matches backup.ErrRefused.
type RefusedError struct {
	ID     string
	Checks []ha.Check
}

func (e *RefusedError) Error() string {
	var failed []string
	for _, c := range ha.Failed(e.Checks) {
		failed = append(failed, c.Detail)
	}
	return fmt.Sprintf("delete of backup %s refused: %s", e.ID, strings.Join(failed, "; "))
}

func (e *RefusedError) Unwrap() error { return backup.ErrRefused }

// Delete deletes one backup and the blocks no other backup uses. It is
// refused, changing nothing, when the backup is pinned, when the
// repository is in use, or when fewer than Keep backups of its family
// would remain; the checks run once before Confirm and again, under the
// lock the deletion holds, after it.
func Delete(ctx context.Context, s reposettings.Settings, req DeleteRequest) (backup.DeleteResult, error) {
	if req.Keep < 0 {
		return backup.DeleteResult{ID: req.ID}, badinput.Errorf("--keep %d: must not be negative", req.Keep)
	}
	var res backup.DeleteResult
	err := s.With(ctx, func(r *repo.Repository) error {
		del := func(checkOnly bool) (err error) {
			res, err = backup.Delete(ctx, r, req.ID, req.Keep, checkOnly)
			if errors.Is(err, backup.ErrRefused) {
				return &RefusedError{ID: req.ID, Checks: res.Checks}
			}
			return err
		}
		if err := del(true); err != nil || req.CheckOnly {
			return err
		}
		if req.Confirm != nil && !req.Confirm() {
			return badinput.Errorf("delete not confirmed (use --yes in scripts)")
		}
		return del(false)
	})
	return res, err
}

// ResolveBackupRef turns "label:TEXT" into the id of the one backup with
// that label; anything else is taken as an id.
func ResolveBackupRef(ctx context.Context, r *repo.Repository, ref string) (string, error) {
	label, ok := strings.CutPrefix(ref, "label:")
	if !ok {
		return ref, nil
	}
	id, err := backup.FindByLabel(ctx, r, label)
	if err != nil {
		return "", badinput.Errorf("--backup %s: %v", ref, err)
	}
	return id, nil
}
