// Package backup runs physical backups of a running PostgreSQL into a
// repository, lists them, and decides what pruning removes. It drives
// internal/backup/source (the PostgreSQL side) and internal/repo (the
// storage side) and owns only the glue between them: which previous backup
// an incremental is relative to, how source chunks become repository files,
// and what a backup records about itself.
//
// A backup's manifest holds every file of PGDATA that source walked, with
// fs.FileMode bits in FileEntry.Mode: directories (fs.ModeDir, no content),
// symlinks (fs.ModeSymlink, content = the link target, e.g. a tablespace
// under pg_tblspc) and regular files. It also holds two files that are not
// read from disk: backup_label and, when PostgreSQL returned one,
// tablespace_map, exactly as pg_backup_stop returned them; a restore writes
// every regular file it finds, so these two land where PostgreSQL expects
// them. pg_wal is present as an empty directory: WAL comes from the archive.
//
// It must never write into the data directory, never log a secret, and
// never write a manifest whose blocks are not all stored (repo guarantees
// the order).
package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/backup/source"
	"github.com/pgguard/pgguard/internal/repo"
)

// ErrBadPages means the backup finished and was stored, but some pages
// failed their checksum; the error lists them.
var ErrBadPages = errors.New("pages with bad checksums")

// Options configures one physical backup.
type Options struct {
	Repo *repo.Repository
	// ConnString reaches the server (libpq keyword or URI form); the
	// backup's start and stop run on one session over it.
	ConnString string
	Kind       repo.Kind // repo.KindFull or repo.KindIncr
	// DataDir is where the server's files are read; empty uses the
	// server's data_directory setting.
	DataDir     string
	Channels    int // parallel readers, 1–255
	FromStandby bool
	// SpreadCheckpoint waits for a spread checkpoint instead of asking for
	// an immediate one.
	SpreadCheckpoint bool
	// IgnoreChecksumErrors makes bad pages a warning instead of an error.
	IgnoreChecksumErrors bool
	Progress             progress.Reporter
	// ReadLimit, when set, paces reads of the data directory (BK-10: the
	// backup read speed, apart from the repository transfer limit).
	ReadLimit func(ctx context.Context, n int) error
	// Waldump is the pg_waldump to read WAL with ("": the one next to the
	// running server).
	Waldump string
}

// Validate reports an option a person must fix.
func (o Options) Validate() error {
	switch {
	case o.Repo == nil:
		return errors.New("no repository")
	case o.ConnString == "":
		return errors.New("no connection string: give --pg or postgresql settings in the config")
	case o.Kind != repo.KindFull && o.Kind != repo.KindIncr:
		return fmt.Errorf("backup kind %q: want full or incr", o.Kind)
	case o.Channels < 1 || o.Channels > 255:
		return fmt.Errorf("channels %d out of range: use 1 to 255", o.Channels)
	}
	return nil
}

// Result is what a finished backup did.
type Result struct {
	Manifest *repo.Manifest
	Source   source.Stats
	Stored   repo.Stats
	Rebuilt  repo.RebuildStats // blocks of an interrupted earlier run now reused
	// Note explains a decision a person should know about (an incremental
	// without a previous backup became a full).
	Note     string
	Duration time.Duration
}

// Run takes one backup: it holds a shared repository lock, indexes packs an
// interrupted run left behind (so their blocks are reused), starts the
// backup on the server, reads the data directory into the repository,
// stops the backup, adds backup_label and tablespace_map, and writes the
// manifest. Bad pages do not stop the backup; unless
// IgnoreChecksumErrors, Run then returns the result with an error wrapping
// ErrBadPages.
func Run(ctx context.Context, opts Options) (Result, error) {
	var res Result
	if err := opts.Validate(); err != nil {
		return res, err
	}
	rep := opts.Progress
	if rep == nil {
		rep = progress.Discard{}
	}
	began := time.Now()
	r := opts.Repo
	lock, err := r.Lock(ctx, false)
	if err != nil {
		return res, fmt.Errorf("lock repository: %w", err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	if res.Rebuilt, err = r.RebuildIndex(ctx); err != nil {
		return res, fmt.Errorf("index packs of interrupted backups: %w", err)
	}
	if res.Rebuilt.PacksAdded > 0 {
		rep.Event("resume", map[string]any{"packs_reused": res.Rebuilt.PacksAdded, "blocks_reused": res.Rebuilt.BlocksAdded})
	}

	conn, err := pgx.Connect(ctx, opts.ConnString)
	if err != nil {
		return res, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	phase := time.Now()
	pb, err := source.Start(ctx, conn, "pgguard "+string(opts.Kind), source.StartOptions{
		Fast: !opts.SpreadCheckpoint, FromStandby: opts.FromStandby, WaitForArchive: !opts.FromStandby,
	})
	if err != nil {
		return res, err
	}
	rep.Event("backup-started", map[string]any{"start_lsn": pb.StartLSN.String(), "timeline": pb.Timeline,
		"checkpoint_seconds": time.Since(phase).Seconds()})
	stopped := false
	defer func() {
		if !stopped {
			// Closing the session aborts the backup on the server.
			conn.Close(context.WithoutCancel(ctx))
		}
	}()

	kind := opts.Kind
	var prev *repo.Manifest
	if kind == repo.KindIncr {
		prev, err = NewestBackup(ctx, r, pb.SystemID)
		if err != nil {
			return res, err
		}
		if prev == nil {
			kind = repo.KindFull
			res.Note = fmt.Sprintf("no earlier backup of system %d in the repository: taking a full backup instead of an incremental", pb.SystemID)
			rep.Event("incremental-became-full", map[string]any{"reason": res.Note})
		}
	}
	hdr := repo.Header{
		Kind: kind, StartTime: pb.StartTime, StartLSN: pb.StartLSN, Timeline: pb.Timeline,
		SystemID: pb.SystemID, PGVersion: pb.ServerVersionNum,
	}
	if prev != nil {
		hdr.Parent = prev.ID
	}
	b, err := r.NewBackup(hdr, prev)
	if err != nil {
		return res, err
	}

	ropts := pb.Options(opts.Channels)
	ropts.ReadLimit, ropts.Waldump = opts.ReadLimit, opts.Waldump
	if opts.DataDir != "" {
		ropts.DataDir = opts.DataDir
	}
	total, err := walkSize(ctx, ropts.DataDir)
	if err != nil {
		return res, err
	}
	scanReason := ""
	if prev != nil {
		ropts.Previous = PreviousOf(prev)
		if scanReason = preferPageScan(uint64(pb.StartLSN), uint64(prev.StartLSN), total); scanReason != "" {
			// An empty WAL directory makes source fall back to the scan.
			empty, err := os.MkdirTemp("", "pgguard-nowal-")
			if err != nil {
				return res, err
			}
			defer os.RemoveAll(empty)
			ropts.WALDir = empty
		}
	}
	rep.Start("backup "+string(kind), total)
	phase = time.Now()
	res.Source, err = source.Read(ctx, ropts, newSink(b, rep))
	rep.Finish()
	if err != nil {
		return res, fmt.Errorf("read %s: %w", ropts.DataDir, err)
	}
	if scanReason != "" {
		res.Source.WALMapFallback = scanReason
	}
	rep.Event("files-read", map[string]any{"seconds": time.Since(phase).Seconds(), "bytes_read": res.Source.BytesRead,
		"wal_map_used": res.Source.WALMapUsed, "wal_map_fallback": res.Source.WALMapFallback})
	phase = time.Now()
	stop, err := pb.Stop(ctx)
	if err != nil {
		return res, err
	}
	stopped = true
	rep.Event("backup-stopped", map[string]any{"stop_lsn": stop.StopLSN.String(), "seconds": time.Since(phase).Seconds()})
	if err := addLabelFiles(ctx, b, stop, pb.StartTime); err != nil {
		return res, err
	}
	hdr = b.Header()
	hdr.StopLSN, hdr.Timeline = stop.StopLSN, stop.Timeline
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&hdr.StopTime); err != nil {
		return res, fmt.Errorf("read server clock: %w", err)
	}
	hdr.DatabaseSize = res.Source.BytesTotal
	res.Stored = b.Stats()
	hdr.Label = Figures{
		BytesRead: res.Source.BytesRead, BytesNew: res.Stored.BytesNew, Files: res.Source.Files,
		BadPages: int64(len(res.Source.BadPages)), PacksReused: int64(res.Rebuilt.PacksAdded),
	}.Label()
	m, err := b.Finish(ctx, hdr)
	if err != nil {
		return res, err
	}
	res.Manifest = m
	res.Stored = b.Stats()
	res.Duration = time.Since(began)
	if n := len(res.Source.BadPages); n > 0 {
		rep.Event("bad-pages", map[string]any{"count": n, "first": res.Source.BadPages[0].String()})
		if !opts.IgnoreChecksumErrors {
			return res, badPagesError(m.ID, res.Source.BadPages)
		}
	}
	return res, nil
}

// walScanRatio: when more WAL than 1/walScanRatio of the data directory was
// written since the previous backup, reading every relation page once
// (sequentially, checking page LSNs) costs less than decoding that WAL with
// pg_waldump; most pages have changed anyway. Below walScanFloor decoding
// is quick whatever the ratio (and LSN distance overstates small volumes:
// every WAL switch skips to the next segment).
const (
	walScanRatio = 4
	walScanFloor = 256 << 20
)

// preferPageScan returns why an incremental should scan page LSNs instead
// of building the WAL block map, or "".
func preferPageScan(start, prevStart uint64, dataBytes int64) string {
	if start <= prevStart || dataBytes <= 0 {
		return ""
	}
	wal := start - prevStart
	if wal*walScanRatio <= uint64(dataBytes) || wal <= walScanFloor {
		return ""
	}
	return fmt.Sprintf("%d MiB of WAL since the previous backup is more than 1/%d of the %d MiB data directory: a page LSN scan is cheaper than decoding it",
		wal>>20, walScanRatio, dataBytes>>20)
}

func badPagesError(id string, pages []source.BadPage) error {
	const show = 5
	msg := ""
	for i, p := range pages {
		if i == show {
			msg += fmt.Sprintf("; and %d more", len(pages)-show)
			break
		}
		if i > 0 {
			msg += "; "
		}
		msg += p.String()
	}
	return fmt.Errorf("backup %s was stored, but %d %w: %s (check the storage under PostgreSQL; pass --ignore-checksum-errors to accept)",
		id, len(pages), ErrBadPages, msg)
}

func walkSize(ctx context.Context, dataDir string) (int64, error) {
	entries, err := source.Walk(ctx, dataDir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		if e.IsRegular() {
			n += e.Size
		}
	}
	return n, nil
}

// addLabelFiles stores backup_label and (when not empty) tablespace_map as
// regular files of the backup.
func addLabelFiles(ctx context.Context, b *repo.Backup, stop source.StopResult, at time.Time) error {
	files := []struct {
		name string
		data []byte
	}{{"backup_label", stop.BackupLabel}, {"tablespace_map", stop.TablespaceMap}}
	for _, f := range files {
		if f.name == "tablespace_map" && len(f.data) == 0 {
			continue
		}
		w, err := b.CreateFile(ctx, repo.FileMeta{Path: f.name, Mode: 0o600, MTime: at})
		if err != nil {
			return err
		}
		if _, err := w.Write(f.data); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}
