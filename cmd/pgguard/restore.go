package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/restore"
	"github.com/pgguard/pgguard/internal/storage"
)

type restoreOptions struct {
	repoFlags
	targetDir      string
	backupID       string
	target         restore.Target
	exclusive      bool
	delta          bool
	start          bool
	stopAfter      bool
	port           int
	binDir         string
	runAs          string
	restoreCommand string
	archiveMode    string
	writeLimit     string
	tablespaces    []string
}

func newRestoreCommand() *cobra.Command {
	opts := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore --target-dir DIR [--time T | --lsn L | --xid X | --name N | --immediate]",
		Short: "Restore a physical backup and set up point-in-time recovery",
		Long: `Restores a backup into --target-dir and sets up archive recovery to one target:
--time, --lsn, --xid, --name (a restore point) or --immediate (the end of the
backup, fastest). Without --backup the newest backup that ends before the
target is used. The directory must be empty, or, with --delta, a data
directory of the same cluster (only blocks that differ are rewritten; also
resumes an interrupted restore). Nothing is changed when an input is wrong.

WAL is fetched by restore_command, by default this pgguard's wal-fetch with
the same -c or --repo. With --repo and PGGUARD_PASSPHRASE (or AWS_*
variables), the server needs those variables in its environment: --start
passes them on; a server started otherwise does not have them, so prefer -c
with repository.key_file.

--start runs postgres on 127.0.0.1:--port only, waits until recovery
reaches the target and the database is open, and leaves it running.`,
		Example: `  pgguard restore -c /etc/pgguard/node.yaml --target-dir /var/lib/postgresql/15/restore --time '2026-11-23 10:00:00+00' --start --port 5499
  pgguard restore --repo s3://backups/main --target-dir /srv/pg --immediate --delta`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestore(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	f := cmd.Flags()
	f.StringVar(&opts.targetDir, "target-dir", "", "directory to restore into: empty, or an existing data directory with --delta (default --pgdata, or postgresql.data_dir of the config)")
	f.StringVar(&opts.backupID, "backup", "", "backup to restore, by id or as label:TEXT (default: the newest that ends before the target)")
	f.StringVar(&opts.target.Time, "time", "", "recover to this time, e.g. '2026-11-23 10:00:00+00' (a zone is required)")
	f.StringVar(&opts.target.LSN, "lsn", "", "recover to this WAL position, e.g. 0/3000060")
	f.StringVar(&opts.target.XID, "xid", "", "recover to this transaction id")
	f.StringVar(&opts.target.Name, "name", "", "recover to this restore point (pg_create_restore_point)")
	f.BoolVar(&opts.target.Immediate, "immediate", false, "recover only to the end of the backup (consistent as soon as possible)")
	f.BoolVar(&opts.target.Standby, "standby", false, "no target: set the directory up as a standby (standby.signal) that replays the archive; its agent then points it at the primary")
	f.BoolVar(&opts.exclusive, "exclusive", false, "stop just before the target transaction instead of just after it")
	f.StringVar(&opts.target.Action, "action", "promote", "when the target is reached: promote, pause or shutdown")
	f.BoolVar(&opts.delta, "delta", false, "rewrite only what differs in an existing data directory of the same cluster (or resume an interrupted restore)")
	f.BoolVar(&opts.start, "start", false, "start the restored server and wait until it is open")
	f.BoolVar(&opts.stopAfter, "stop-after", false, "with --start: shut the server down once it is open")
	f.IntVar(&opts.port, "port", 0, "with --start: port on 127.0.0.1 (default postgresql.port of the config)")
	f.StringVar(&opts.binDir, "bin-dir", "", "PostgreSQL binaries (default postgresql.bin_dir, or the newest installed)")
	f.StringVar(&opts.runAs, "run-as", "", "when root: the account that owns the files and runs the server (default run_as, or postgres)")
	f.StringVar(&opts.restoreCommand, "restore-command", "", "restore_command to write (default: this pgguard's wal-fetch with the same -c or --repo)")
	f.StringArrayVar(&opts.tablespaces, "tablespace", nil, "restore tablespace OID to DIR instead of its original location: OID=DIR (repeatable)")
	f.StringVar(&opts.writeLimit, "write-limit", "", "target directory write limit, e.g. 50MiB, or by time of day: 'unlimited,08:00-20:00=10MiB' (apart from --rate-limit, the repository transfer)")
	f.StringVar(&opts.archiveMode, "archive-mode", "preserve", "archiving of the restored server: preserve (its configuration as backed up) or off (a copy that must not archive into the original's archive)")
	return cmd
}

func runRestore(ctx context.Context, opts *restoreOptions, out io.Writer) error {
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return err
	}
	if opts.archiveMode != "preserve" && opts.archiveMode != "off" {
		return badInput("--archive-mode %q: use preserve or off", opts.archiveMode)
	}
	if opts.stopAfter && !opts.start {
		return badInput("--stop-after needs --start")
	}
	var writeLimit func(context.Context, int) error
	if opts.writeLimit != "" {
		rs, err := parseRateSchedule(opts.writeLimit)
		if err != nil {
			return badInput("--write-limit: %v", err)
		}
		writeLimit = storage.NewLimiter(rs, storage.Clock{}).Wait
	}
	// Into the node's own data directory when no other is named (RS-1:
	// "into the original data directory or a new one").
	dir := firstNonEmpty(opts.targetDir, s.DataDir)
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return badInput("--target-dir %q: %v", opts.targetDir, err)
		}
	}
	runAs := opts.runAs
	if runAs == "" && s.Config != nil {
		runAs = s.Config.RunAs
	}
	acct, err := osuser.Resolve(runAs)
	if err != nil {
		return usageError{err}
	}
	binDir := firstNonEmpty(opts.binDir, s.BinDir, config.DetectBinDir())
	port := opts.port
	if port == 0 {
		port = s.Port
	}
	cmdline := opts.restoreCommand
	if cmdline == "" {
		if cmdline, err = defaultRestoreCommand(opts.configPath, s.RepoURL); err != nil {
			return err
		}
	}
	ro := restore.Options{
		BackupID: opts.backupID, TargetDir: dir, Target: opts.target, Delta: opts.delta,
		Channels: s.Channels, RestoreCommand: cmdline, ArchiveOff: opts.archiveMode == "off",
		Account: acct, Start: opts.start, BinDir: binDir, Programs: s.Programs, Database: s.Database, Port: port, StopAfterOpen: opts.stopAfter,
		WriteLimit: writeLimit,
	}
	ro.Target.Inclusive = !opts.exclusive
	for _, m := range opts.tablespaces {
		oid, loc, ok := strings.Cut(m, "=")
		if !ok || oid == "" || loc == "" {
			return badInput("--tablespace %q: use OID=DIR, e.g. --tablespace 16384=/srv/pg/ts (the OIDs are in the backup's tablespace_map)", m)
		}
		if loc, err = filepath.Abs(loc); err != nil {
			return badInput("--tablespace %q: %v", m, err)
		}
		if ro.Tablespaces == nil {
			ro.Tablespaces = map[string]string{}
		}
		ro.Tablespaces[oid] = loc
	}
	if opts.start && port == 0 {
		return badInput("--start needs --port (or postgresql.port in the config, -c)")
	}
	// Check what needs no repository first, so that a typo costs nothing.
	if err := ro.Validate(); err != nil {
		return usageError{err}
	}
	r, err := openRepository(ctx, s)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	if ro.BackupID, err = resolveBackupRef(ctx, r, ro.BackupID); err != nil {
		return err
	}
	ro.Repo = r
	ro.Progress = progressAdapter(progress.ForStderr())
	res, err := restore.Run(ctx, ro)
	if err != nil {
		return err
	}
	return writeOutput(out, s.Output, res, func(w io.Writer) error {
		fmt.Fprintf(w, "restored backup %s into %s in %s: %s of files, %s written, %s fetched",
			res.BackupID, dir, res.Duration.Round(time.Millisecond), humanBytes(res.BytesTotal), humanBytes(res.BytesWritten), humanBytes(res.BytesFetched))
		if opts.delta {
			fmt.Fprintf(w, "; delta: %d of %d files unchanged, %d removed", res.Unchanged, res.Files, res.Removed)
		}
		fmt.Fprintln(w)
		for _, n := range res.Notes {
			fmt.Fprintln(w, "note:", n)
		}
		switch {
		case opts.target.Standby:
			fmt.Fprintf(w, "standby is set up (standby.signal, postgresql.auto.conf): its agent starts it and names the primary to stream from\n")
		case !opts.start:
			fmt.Fprintf(w, "recovery is set up (recovery.signal, postgresql.auto.conf); start the server on %s to recover\n", dir)
		case res.Server == nil:
			fmt.Fprintf(w, "recovery reached the target and the database opened after %s; the server was shut down\n", res.OpenAfter.Round(time.Millisecond))
		default:
			fmt.Fprintf(w, "recovery reached the target (%s) after %s; postgres pid %d is running on 127.0.0.1:%d (log %s)\n",
				ro.Target.Action, res.OpenAfter.Round(time.Millisecond), res.Server.PID, res.Server.Port, res.Server.LogPath)
			fmt.Fprintf(w, "stop it with: kill -INT %d\n", res.Server.PID)
		}
		return nil
	})
}

// defaultRestoreCommand is this binary's wal-fetch with the same
// repository settings. Only the config path or the repository URL goes
// into it, never a secret.
func defaultRestoreCommand(configPath, repoURL string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this pgguard binary for restore_command: %w (give --restore-command)", err)
	}
	args := []string{shellQuote(exe), "wal-fetch"}
	if configPath != "" {
		abs, err := filepath.Abs(configPath)
		if err != nil {
			return "", badInput("-c %q: %v", configPath, err)
		}
		args = append(args, "-c", shellQuote(abs))
	} else {
		args = append(args, "--repo", shellQuote(repoURL))
	}
	return strings.Join(append(args, "%f", "%p"), " "), nil
}

// shellQuote quotes s for sh when it has anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-:+=@,", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// progressAdapter turns restore events into a progress bar or JSON lines.
func progressAdapter(rep progress.Reporter) func(restore.Event) {
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
