package repoops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repocopy"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// CopyRequest copies backups and the WAL they need into another
// repository.
type CopyRequest struct {
	// ToRepo overrides repository.copy_to.url of the config.
	ToRepo string
	// Select says which backups and WAL (its Parallel and Progress are
	// set by Copy).
	Select repocopy.Options
	// Progress counts the bytes read from the source. It starts with the
	// first block, so a refused copy shows none.
	Progress progress.Reporter
}

// CopyReport is what a copy did (`pgguard copy -o json`): stored_size
// repeats bytes_stored under the name a backup's report uses (the job
// runner once read it from this output; it reads the job result message
// now), id is the newest backup copied.
type CopyReport struct {
	repocopy.Result
	ID         string `json:"id,omitempty"`
	StoredSize int64  `json:"stored_size"`
}

// Copy copies backups from the repository of s into the destination,
// deduplicated. The destination is opened first: a wrong destination key
// fails before the source is even opened, and both before anything is
// written. An interrupted copy resumes where it stopped when run again.
func Copy(ctx context.Context, s reposettings.Settings, req CopyRequest) (CopyReport, error) {
	sel := req.Select
	if err := sel.Validate(); err != nil {
		return CopyReport{}, badinput.Wrap(err)
	}
	sel.Parallel = s.Channels
	d, err := s.Destination(req.ToRepo)
	if err != nil {
		return CopyReport{}, err
	}
	dst, err := d.Open(ctx)
	if err != nil {
		return CopyReport{}, err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	src, err := s.Open(ctx)
	if err != nil {
		return CopyReport{}, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	rep := reporter(req.Progress)
	var (
		started sync.Once
		shown   atomic.Int64
		began   bool
	)
	sel.Progress = func(r repocopy.Result) {
		started.Do(func() {
			rep.Start("copy", 0)
			began = true
		})
		for {
			old := shown.Load()
			if r.BytesRead <= old {
				return
			}
			if shown.CompareAndSwap(old, r.BytesRead) {
				rep.Add(r.BytesRead - old)
				return
			}
		}
	}
	res, err := repocopy.Copy(ctx, src, dst, sel)
	started.Do(func() {}) // no more starts; Progress calls have returned
	if began {
		rep.Finish()
	}
	if err != nil {
		if len(res.Copied) > 0 || res.BlocksCopied > 0 {
			err = fmt.Errorf("%w (copied so far: %d backups, %d blocks, %s; run the same copy again to resume)",
				err, len(res.Copied), res.BlocksCopied, HumanBytes(res.BytesStored))
		}
		var ie *repocopy.InputError
		if errors.As(err, &ie) {
			return CopyReport{}, badinput.Wrap(err)
		}
		return CopyReport{}, err
	}
	report := CopyReport{Result: res, StoredSize: res.BytesStored}
	if n := len(res.Copied); n > 0 {
		report.ID = res.Copied[n-1]
	}
	return report, nil
}
