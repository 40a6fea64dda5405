package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Conn is the single session a backup runs on. PostgreSQL ties a
// non-exclusive backup to the session that started it: the start and stop
// calls must go over the same connection, held open until Stop (closing it
// aborts the backup). *pgx.Conn satisfies Conn; a pool does not.
type Conn interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// StartOptions tunes Start.
type StartOptions struct {
	// Fast asks for an immediate checkpoint instead of a spread one.
	Fast bool
	// FromStandby states that the server is a standby; Start refuses a
	// mismatch either way so that a failover between planning and running a
	// backup is noticed.
	FromStandby bool
	// WaitForArchive makes Stop wait until the WAL needed by the backup is
	// archived (primary only; PostgreSQL does not wait on a standby).
	WaitForArchive bool
}

// Backup is a non-exclusive backup in progress on one server.
//
// From a standby (FromStandby), PostgreSQL requires hot_standby and that the
// primary ran with full_page_writes on since the last restartpoint; the
// start waits for a restartpoint, which comes only after a checkpoint on the
// primary (a CHECKPOINT there speeds it up); Stop does not wait for
// archiving, so the WAL up to StopLSN must be fetched from the archive or
// the primary; and the backup fails if the standby is promoted meanwhile.
type Backup struct {
	conn Conn
	opts StartOptions

	Label            string
	StartLSN         lsn.LSN
	Timeline         uint32 // of the start checkpoint; confirmed from backup_label by Stop
	SystemID         uint64
	ServerVersionNum int // e.g. 150004
	DataChecksums    bool
	DataDir          string    // the server's data_directory
	StartTime        time.Time // server clock just before the backup started
	stopped          bool
}

// StopResult is what pg_backup_stop returns. BackupLabel and TablespaceMap
// must be written into the restored data directory as backup_label and
// tablespace_map (the latter only when non-empty); they are never read from
// disk.
type StopResult struct {
	StopLSN       lsn.LSN
	BackupLabel   []byte
	TablespaceMap []byte
	Timeline      uint32 // START TIMELINE from the label
}

// Start begins a non-exclusive backup labelled label on conn and records
// what a restore needs to know about the server.
func Start(ctx context.Context, conn Conn, label string, opts StartOptions) (*Backup, error) {
	b := &Backup{conn: conn, opts: opts, Label: label}
	var inRecovery bool
	var blockSize int
	var checksums string
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int,
		pg_is_in_recovery(), current_setting('data_checksums'),
		current_setting('block_size')::int, current_setting('data_directory')`).
		Scan(&b.ServerVersionNum, &inRecovery, &checksums, &blockSize, &b.DataDir)
	if err != nil {
		return nil, fmt.Errorf("read server settings: %w (the backup needs a superuser or a role with pg_read_all_settings)", err)
	}
	b.DataChecksums = checksums == "on"
	switch {
	case b.ServerVersionNum < 130000:
		return nil, fmt.Errorf("server version %d is not supported: physical backup needs PostgreSQL 13 or newer", b.ServerVersionNum)
	case blockSize != PageSize:
		return nil, fmt.Errorf("server block_size is %d: only %d-byte pages are supported", blockSize, PageSize)
	case inRecovery && !opts.FromStandby:
		return nil, errors.New("server is a standby (in recovery): back it up with --from-standby, or connect to the primary")
	case !inRecovery && opts.FromStandby:
		return nil, errors.New("--from-standby was given but the server is not in recovery: it is a primary (was it promoted?)")
	}
	var sysid int64
	if err := conn.QueryRow(ctx, `SELECT system_identifier FROM pg_control_system()`).Scan(&sysid); err != nil {
		return nil, fmt.Errorf("read system identifier: %w", err)
	}
	b.SystemID = uint64(sysid)
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&b.StartTime); err != nil {
		return nil, fmt.Errorf("read server clock: %w", err)
	}
	q := `SELECT pg_backup_start($1, $2)::text`
	if b.ServerVersionNum < 150000 {
		q = `SELECT pg_start_backup($1, $2, false)::text`
	}
	var start string
	if err := conn.QueryRow(ctx, q, label, opts.Fast).Scan(&start); err != nil {
		return nil, fmt.Errorf("start backup %q: %w", label, err)
	}
	if b.StartLSN, err = lsn.Parse(start); err != nil {
		return nil, fmt.Errorf("start backup: %w", err)
	}
	var tli int32
	if err := conn.QueryRow(ctx, `SELECT timeline_id FROM pg_control_checkpoint()`).Scan(&tli); err != nil {
		return nil, fmt.Errorf("read timeline: %w", err)
	}
	b.Timeline = uint32(tli)
	return b, nil
}

// Stop ends the backup and returns the stop LSN and the label files. It
// must be called on the same session as Start, after every file was read.
func (b *Backup) Stop(ctx context.Context) (StopResult, error) {
	if b.stopped {
		return StopResult{}, errors.New("backup already stopped")
	}
	q := `SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop($1)`
	if b.ServerVersionNum < 150000 {
		q = `SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_stop_backup(false, $1)`
	}
	var stopText, label, spcmap string
	// PostgreSQL's own wait for the archive checks once a second; the wait
	// is done here instead, every 50 ms (a backup is only usable once the
	// WAL up to its stop point is archived).
	if err := b.conn.QueryRow(ctx, q, false).Scan(&stopText, &label, &spcmap); err != nil {
		return StopResult{}, fmt.Errorf("stop backup %q: %w", b.Label, err)
	}
	b.stopped = true
	if b.opts.WaitForArchive {
		if err := b.waitArchived(ctx, stopText); err != nil {
			return StopResult{}, err
		}
	}
	stop, err := lsn.Parse(stopText)
	if err != nil {
		return StopResult{}, fmt.Errorf("stop backup: %w", err)
	}
	info, err := ParseBackupLabel(label)
	if err != nil {
		return StopResult{}, fmt.Errorf("stop backup: %w", err)
	}
	if info.StartLSN != b.StartLSN {
		return StopResult{}, fmt.Errorf("stop backup: backup_label says start %s but the backup started at %s", info.StartLSN, b.StartLSN)
	}
	b.Timeline = info.Timeline
	return StopResult{StopLSN: stop, BackupLabel: []byte(label), TablespaceMap: []byte(spcmap), Timeline: info.Timeline}, nil
}

// waitArchived waits until the archiver has archived the segment that
// holds the last byte before stopLSN (what pg_backup_stop(true) waits for).
func (b *Backup) waitArchived(ctx context.Context, stopLSN string) error {
	var seg string
	if err := b.conn.QueryRow(ctx, `SELECT pg_walfile_name($1::pg_lsn)`, stopLSN).Scan(&seg); err != nil {
		return fmt.Errorf("stop backup: WAL segment of %s: %w", stopLSN, err)
	}
	var last, failed string
	for {
		err := b.conn.QueryRow(ctx, `SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') FROM pg_stat_archiver`).Scan(&last, &failed)
		if err != nil {
			return fmt.Errorf("stop backup: wait for %s to be archived: %w", seg, err)
		}
		// Names of one timeline sort in WAL order; a .backup or .partial
		// name sorts after its segment.
		if len(last) >= len(seg) && last[:8] == seg[:8] && last >= seg {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop backup: waiting for %s to be archived (last archived %q, last failed %q): %w", seg, last, failed, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LabelInfo is what a backup_label file states.
type LabelInfo struct {
	StartLSN   lsn.LSN
	StartWAL   string // segment file name
	Checkpoint lsn.LSN
	Timeline   uint32
	FromRole   string // "primary" or "standby"
	Label      string
}

// ParseBackupLabel reads the fields of a backup_label file.
func ParseBackupLabel(label string) (LabelInfo, error) {
	var li LabelInfo
	sc := bufio.NewScanner(strings.NewReader(label))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "START WAL LOCATION":
			start, rest, _ := strings.Cut(v, " ")
			li.StartLSN, err = lsn.Parse(start)
			li.StartWAL = strings.TrimSuffix(strings.TrimPrefix(rest, "(file "), ")")
		case "CHECKPOINT LOCATION":
			li.Checkpoint, err = lsn.Parse(v)
		case "START TIMELINE":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			li.Timeline = uint32(n)
		case "BACKUP FROM":
			li.FromRole = v
		case "LABEL":
			li.Label = v
		}
		if err != nil {
			return LabelInfo{}, fmt.Errorf("parse backup_label line %q: %w", sc.Text(), err)
		}
	}
	if li.StartLSN == 0 {
		return LabelInfo{}, errors.New("parse backup_label: no START WAL LOCATION line")
	}
	if li.Timeline == 0 && len(li.StartWAL) == 24 {
		// PostgreSQL before 11 had no START TIMELINE; the segment name starts with it.
		n, err := strconv.ParseUint(li.StartWAL[:8], 16, 32)
		if err == nil {
			li.Timeline = uint32(n)
		}
	}
	return li, nil
}
