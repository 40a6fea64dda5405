package repoops

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/restore"
)

// RestoreRequest is a physical restore with point-in-time recovery as a
// person asks for it; empty fields take the node's settings.
type RestoreRequest struct {
	TargetDir string // default: the data directory of the settings
	BackupRef string // id or label:TEXT; "": the newest that ends before the target
	Target    restore.Target
	Exclusive bool // stop just before the target transaction
	Delta     bool
	Start     bool
	StopAfter bool   // with Start: shut the server down once it is open
	Port      int    // with Start; default postgresql.port
	BinDir    string // default postgresql.bin_dir, or the newest installed
	RunAs     string // default run_as of the config
	// RestoreCommand default: this binary's wal-fetch with the same
	// settings (reposettings.Settings.RestoreCommand).
	RestoreCommand string
	ArchiveMode    string   // preserve or off
	WriteLimit     string   // target directory write limit
	Tablespaces    []string // OID=DIR
	Progress       progress.Reporter
}

// RestoreResult is what a restore did, and where.
type RestoreResult struct {
	restore.Result
	TargetDir string `json:"-"` // absolute
}

// Restore restores a backup and sets up recovery. Everything that needs
// no repository is checked first, so that a typo costs nothing.
func Restore(ctx context.Context, s reposettings.Settings, req RestoreRequest) (RestoreResult, error) {
	ro, err := restoreOptions(s, req)
	if err != nil {
		return RestoreResult{}, err
	}
	res := RestoreResult{TargetDir: ro.TargetDir}
	err = s.With(ctx, func(r *repo.Repository) error {
		if ro.BackupID, err = ResolveBackupRef(ctx, r, ro.BackupID); err != nil {
			return err
		}
		ro.Repo = r
		ro.Progress = restoreProgress(reporter(req.Progress))
		res.Result, err = restore.Run(ctx, ro)
		return err
	})
	return res, err
}

// restoreOptions turns a request into restore options and checks them.
func restoreOptions(s reposettings.Settings, req RestoreRequest) (restore.Options, error) {
	var ro restore.Options
	if req.ArchiveMode != "preserve" && req.ArchiveMode != "off" {
		return ro, badinput.Errorf("--archive-mode %q: use preserve or off", req.ArchiveMode)
	}
	if req.StopAfter && !req.Start {
		return ro, badinput.Errorf("--stop-after needs --start")
	}
	writeLimit, err := reposettings.RateWait(req.WriteLimit)
	if err != nil {
		return ro, badinput.Errorf("--write-limit: %v", err)
	}
	// Into the node's own data directory when no other is named (RS-1:
	// "into the original data directory or a new one").
	dir := firstNonEmpty(req.TargetDir, s.DataDir)
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return ro, badinput.Errorf("--target-dir %q: %v", req.TargetDir, err)
		}
	}
	acct, err := osuser.Resolve(firstNonEmpty(req.RunAs, s.RunAs()))
	if err != nil {
		return ro, badinput.Wrap(err)
	}
	port := req.Port
	if port == 0 {
		port = s.Port
	}
	cmdline := req.RestoreCommand
	if cmdline == "" {
		if cmdline, err = s.RestoreCommand(); err != nil {
			return ro, err
		}
	}
	ro = restore.Options{
		BackupID: req.BackupRef, TargetDir: dir, Target: req.Target, Delta: req.Delta,
		Channels: s.Channels, RestoreCommand: cmdline, ArchiveOff: req.ArchiveMode == "off",
		Account: acct, Start: req.Start, BinDir: firstNonEmpty(req.BinDir, s.BinDir, config.DetectBinDir()),
		Programs: s.Programs, Database: s.Database, Port: port, StopAfterOpen: req.StopAfter, WriteLimit: writeLimit,
	}
	ro.Target.Inclusive = !req.Exclusive
	if s.Config != nil {
		// The restored copy keeps the cluster's pg_hba.conf and roles.
		ro.User, ro.Password = s.Config.Postgres.Superuser.Username, s.Config.Postgres.Superuser.Password
	}
	for _, m := range req.Tablespaces {
		oid, loc, ok := strings.Cut(m, "=")
		if !ok || oid == "" || loc == "" {
			return ro, badinput.Errorf("--tablespace %q: use OID=DIR, e.g. --tablespace 16384=/srv/pg/ts (the OIDs are in the backup's tablespace_map)", m)
		}
		if loc, err = filepath.Abs(loc); err != nil {
			return ro, badinput.Errorf("--tablespace %q: %v", m, err)
		}
		if ro.Tablespaces == nil {
			ro.Tablespaces = map[string]string{}
		}
		ro.Tablespaces[oid] = loc
	}
	if req.Start && port == 0 {
		return ro, badinput.Errorf("--start needs --port (or postgresql.port in the config, -c)")
	}
	return ro, badinput.Wrap(ro.Validate())
}

// restoreProgress turns restore events into a progress bar or JSON lines.
func restoreProgress(rep progress.Reporter) func(restore.Event) {
	var done int64
	return func(e restore.Event) {
		switch e.Phase {
		case "plan":
			rep.Event("plan", map[string]any{"backup_id": e.BackupID, "files": e.FilesTotal, "bytes": e.BytesTotal, "message": e.Message})
			rep.Start("restore", e.BytesTotal)
		case "files":
			if e.BytesDone > done {
				rep.Add(e.BytesDone - done)
				done = e.BytesDone
			}
		case "recovery":
			rep.Finish()
			rep.Event(e.Phase, map[string]any{"message": e.Message})
		default:
			rep.Event(e.Phase, map[string]any{"backup_id": e.BackupID, "message": e.Message})
		}
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
