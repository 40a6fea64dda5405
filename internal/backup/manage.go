package backup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/repo"
)

// Family is what a deletion counts against the minimum: physical backups
// (full and incremental, any of which restores on its own: an incremental
// manifest names every block it needs) or logical ones.
func family(k repo.Kind) string {
	if k == repo.KindLogical {
		return "logical"
	}
	return "physical"
}

// DeleteChecks are the conditions of deleting backup id from a repository
// holding backups, leaving at least keep backups of its family (physical
// or logical), without I/O. The lock condition is added by Delete.
func DeleteChecks(backups []BackupInfo, id string, keep int) []ha.Check {
	var target *BackupInfo
	for i := range backups {
		if backups[i].ID == id {
			target = &backups[i]
		}
	}
	var ids []string
	for _, b := range backups {
		ids = append(ids, b.ID)
	}
	if target == nil {
		detail := "the repository holds no backup at all"
		if len(ids) > 0 {
			detail = fmt.Sprintf("no backup %s in the repository ('pgguard backups' lists the %d it holds)", id, len(ids))
		}
		return []ha.Check{{Name: "backup exists", Detail: detail}}
	}
	checks := []ha.Check{{Name: "backup exists", OK: true, Detail: fmt.Sprintf("%s, %s, started %s", id, target.Kind, target.StartTime.UTC().Format("2006-01-02 15:04:05Z"))}}
	pin := ha.Check{Name: "backup not pinned", OK: !target.Pinned, Detail: "not pinned"}
	if target.Pinned {
		pin.Detail = fmt.Sprintf("%s is pinned: unpin it first ('pgguard backups unpin %s')", id, id)
	}
	checks = append(checks, pin)
	left := 0
	for _, b := range backups {
		if b.ID != id && family(b.Kind) == family(target.Kind) {
			left++
		}
	}
	min := ha.Check{Name: "retention minimum kept", OK: left >= keep,
		Detail: fmt.Sprintf("%d %s backups would remain, at least %d must (--keep)", left, family(target.Kind), keep)}
	if !min.OK {
		min.Detail = fmt.Sprintf("only %d %s backups would remain, at least %d must: take a new backup first, or lower --keep", left, family(target.Kind), keep)
	}
	return append(checks, min)
}

// DeleteResult is what Delete found and did.
type DeleteResult struct {
	ID      string       `json:"id"`
	Checks  []ha.Check   `json:"checks"`
	Deleted bool         `json:"deleted"`
	GC      repo.GCStats `json:"gc"`
}

// ErrRefused is returned when a check fails; the result says which.
var ErrRefused = errors.New("refused")

// Delete removes backup id when every check passes, then the blocks no
// other backup uses, under the exclusive repository lock (so never while a
// backup, a copy, a restore or a prune holds the repository). With
// checkOnly it only answers the checks. WAL stays: prune decides what WAL
// the remaining backups no longer need.
func Delete(ctx context.Context, r *repo.Repository, id string, keep int, checkOnly bool) (DeleteResult, error) {
	res := DeleteResult{ID: id}
	if keep < 0 {
		return res, fmt.Errorf("keep %d: must not be negative", keep)
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		if !errors.Is(err, repo.ErrLocked) {
			return res, fmt.Errorf("lock repository: %w", err)
		}
		res.Checks = append(res.Checks, ha.Check{Name: "repository not in use",
			Detail: "a backup, copy, restore or prune holds the repository: " + strings.TrimPrefix(err.Error(), repo.ErrLocked.Error()+": ")})
		return res, ErrRefused
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	res.Checks = append(res.Checks, ha.Check{Name: "repository not in use", OK: true, Detail: "exclusive lock taken"})
	infos, err := loadInfos(ctx, r)
	if err != nil {
		return res, err
	}
	res.Checks = append(res.Checks, DeleteChecks(infos, id, keep)...)
	if len(ha.Failed(res.Checks)) > 0 {
		return res, ErrRefused
	}
	if checkOnly {
		return res, nil
	}
	if err := r.DeleteManifest(ctx, id); err != nil {
		return res, err
	}
	res.Deleted = true
	if res.GC, err = r.GC(ctx); err != nil {
		return res, fmt.Errorf("backup %s deleted; freeing its blocks failed (the next prune or delete retries): %w", id, err)
	}
	return res, nil
}

// FindByLabel returns the id of the one backup labelled label; an error
// names the candidates when none or several carry it.
func FindByLabel(ctx context.Context, r *repo.Repository, label string) (string, error) {
	ann, err := r.Annotations(ctx)
	if err != nil {
		return "", err
	}
	var ids []string
	for id, a := range ann {
		if a.Label == label {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		var labels []string
		for id, a := range ann {
			if a.Label != "" {
				labels = append(labels, fmt.Sprintf("%s=%q", id, a.Label))
			}
		}
		sort.Strings(labels)
		if len(labels) == 0 {
			return "", fmt.Errorf("no backup is labelled %q (no backup has a label; 'pgguard backups label ID TEXT' gives one)", label)
		}
		return "", fmt.Errorf("no backup is labelled %q (labels: %s)", label, strings.Join(labels, ", "))
	}
	return "", fmt.Errorf("%d backups are labelled %q (%s): name one by its id", len(ids), label, strings.Join(ids, ", "))
}
