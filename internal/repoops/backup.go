package repoops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// BackupRequest is a physical backup of the running server s connects to.
type BackupRequest struct {
	Kind                 repo.Kind // full or incr
	FromStandby          bool      // the server is a standby (refused if it is a primary)
	SpreadCheckpoint     bool
	IgnoreChecksumErrors bool   // bad pages are reported, but are no error
	ReadLimit            string // data directory read limit (storage.ParseRateSchedule)
	Label                string
	Progress             progress.Reporter // nil: none
}

// BackupReport is what a backup did (`pgguard backup -o json`).
type BackupReport struct {
	backup.Summary
	Note              string   `json:"note,omitempty"`
	Seconds           float64  `json:"seconds"`
	FilesRead         int64    `json:"files_read"`
	FilesFromPrevious int64    `json:"files_from_previous"`
	PagesChecked      int64    `json:"pages_checked"`
	WALMapUsed        bool     `json:"wal_map_used"`
	WALMapFallback    string   `json:"wal_map_fallback,omitempty"`
	PacksReused       int      `json:"packs_reused"`
	BadPages          []string `json:"bad_pages_list,omitempty"`
	Attempts          int      `json:"attempts"`

	Duration time.Duration `json:"-"`
}

// Backup takes a backup into the repository of s, reconnecting to a lost
// database for up to the repository's reconnect timeout (BK-9). The
// report is nil when no backup was made; a backup made with an error
// (bad pages, a label not saved) returns both.
func Backup(ctx context.Context, s reposettings.Settings, req BackupRequest) (*BackupReport, error) {
	if err := repo.CheckLabel(req.Label); err != nil {
		return nil, badinput.Errorf("--label: %v", err)
	}
	if err := s.RequireConn(); err != nil {
		return nil, err
	}
	readLimit, err := reposettings.RateWait(req.ReadLimit)
	if err != nil {
		return nil, badinput.Errorf("--read-limit: %v", err)
	}
	r, err := s.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer r.Close(context.WithoutCancel(ctx))
	res, attempts, err := backup.RunReconnecting(ctx, backup.Options{
		Repo: r, ConnString: s.ConnStr, Kind: req.Kind, DataDir: s.DataDir, Channels: s.Channels,
		FromStandby: req.FromStandby, SpreadCheckpoint: req.SpreadCheckpoint,
		IgnoreChecksumErrors: req.IgnoreChecksumErrors, Progress: reporter(req.Progress), ReadLimit: readLimit,
		Waldump: s.Waldump(),
	}, s.Retry.ReconnectTimeout)
	if res.Manifest == nil {
		return nil, err
	}
	id := res.Manifest.ID
	if req.Label != "" {
		if lerr := r.SetAnnotation(ctx, id, repo.Annotation{Label: req.Label}); lerr != nil {
			err = errors.Join(err, fmt.Errorf("backup %s made, but its label was not saved (set it with 'pgguard backups label %s TEXT'): %w", id, id, lerr))
		}
	}
	rep := &BackupReport{Summary: backup.Summarize(res.Manifest.Header), Note: res.Note, Attempts: attempts,
		Seconds: res.Duration.Seconds(), Duration: res.Duration, FilesRead: res.Source.FilesRead,
		FilesFromPrevious: res.Source.FilesFromPrevious, PagesChecked: res.Source.PagesChecked,
		WALMapUsed: res.Source.WALMapUsed, WALMapFallback: res.Source.WALMapFallback, PacksReused: res.Rebuilt.PacksAdded}
	for _, p := range res.Source.BadPages {
		rep.BadPages = append(rep.BadPages, p.String())
	}
	if n := r.MissingPacks(); n > 0 {
		s.Noticef("warning: the repository's index names %d packs the storage does not hold (deleted outside pgguard); their blocks were stored again; 'pgguard verify --all' names the backups that used them", n)
	}
	return rep, err
}

// Listed is one backup of List: its summary and its label and pin.
type Listed struct {
	backup.Summary
	repo.Annotation
}

// List lists the backups of the repository with their annotations.
func List(ctx context.Context, s reposettings.Settings) ([]Listed, error) {
	var list []Listed
	err := s.With(ctx, func(r *repo.Repository) error {
		ids, err := r.ListBackups(ctx)
		if err != nil {
			return err
		}
		ann, err := r.Annotations(ctx)
		if err != nil {
			return err
		}
		list = make([]Listed, 0, len(ids))
		for _, id := range ids {
			m, err := r.LoadManifest(ctx, id)
			if err != nil {
				return err
			}
			list = append(list, Listed{backup.Summarize(m.Header), ann[id]})
		}
		return nil
	})
	return list, err
}

// WriteBackups prints the list as a table.
func WriteBackups(w io.Writer, list []Listed) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTART\tSTOP\tSTART LSN\tSTOP LSN\tTL\tSIZE\tSTORED\tPIN\tLABEL")
	for _, b := range list {
		pin := ""
		if b.Pinned {
			pin = "pinned"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", b.ID, b.Kind,
			b.StartTime.UTC().Format(time.RFC3339), b.StopTime.UTC().Format(time.RFC3339),
			b.StartLSN, b.StopLSN, b.Timeline, HumanBytes(b.Size), HumanBytes(b.StoredSize), pin, b.Label)
	}
	return tw.Flush()
}
