package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
)

func newRestoreCommand() *cobra.Command {
	opts, req := &repoFlags{boundedMemory: true}, repoops.RestoreRequest{}
	cmd := &cobra.Command{
		Use:   "restore --target-dir DIR [--time T | --lsn L | --xid X | --name N | --immediate | --latest]",
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
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			req.Progress = progress.ForStderr()
			res, err := repoops.Restore(ctx, s, req)
			if err != nil {
				return err
			}
			return jobResult(res.JobResult(), writeOutput(out, opts.output, res.Result, func(w io.Writer) error { return repoops.WriteRestore(w, req, res) }))
		}),
	}
	bindRepoFlags(cmd, opts)
	f := cmd.Flags()
	f.StringVar(&req.TargetDir, "target-dir", "", "directory to restore into: empty, or an existing data directory with --delta (default --pgdata, or postgresql.data_dir of the config)")
	f.StringVar(&req.BackupRef, "backup", "", "backup to restore, by id or as label:TEXT (default: the newest that ends before the target)")
	f.StringVar(&req.Target.Time, "time", "", "recover to this time, e.g. '2026-11-23 10:00:00+00' (a zone is required)")
	f.StringVar(&req.Target.LSN, "lsn", "", "recover to this WAL position, e.g. 0/3000060")
	f.StringVar(&req.Target.XID, "xid", "", "recover to this transaction id")
	f.StringVar(&req.Target.Name, "name", "", "recover to this restore point (pg_create_restore_point)")
	f.BoolVar(&req.Target.Immediate, "immediate", false, "recover only to the end of the backup (consistent as soon as possible)")
	f.BoolVar(&req.Target.Latest, "latest", false, "no target: recover to the end of the archive (the WAL stream's tail included) and open")
	f.BoolVar(&req.Target.Standby, "standby", false, "no target: set the directory up as a standby (standby.signal) that replays the archive; its agent then points it at the primary")
	f.BoolVar(&req.Exclusive, "exclusive", false, "stop just before the target transaction instead of just after it")
	f.StringVar(&req.Target.Action, "action", "promote", "when the target is reached: promote, pause or shutdown")
	f.BoolVar(&req.Delta, "delta", false, "rewrite only what differs in an existing data directory of the same cluster (or resume an interrupted restore)")
	f.BoolVar(&req.Start, "start", false, "start the restored server and wait until it is open")
	f.BoolVar(&req.StopAfter, "stop-after", false, "with --start: shut the server down once it is open")
	f.IntVar(&req.Port, "port", 0, "with --start: port on 127.0.0.1 (default postgresql.port of the config)")
	f.StringVar(&req.BinDir, "bin-dir", "", "PostgreSQL binaries (default postgresql.bin_dir, or the newest installed)")
	f.StringVar(&req.RunAs, "run-as", "", "when root: the account that owns the files and runs the server (default run_as, or postgres)")
	f.StringVar(&req.RestoreCommand, "restore-command", "", "restore_command to write (default: this pgguard's wal-fetch with the same -c or --repo)")
	f.StringArrayVar(&req.Tablespaces, "tablespace", nil, "restore tablespace OID to DIR instead of its original location: OID=DIR (repeatable)")
	f.StringVar(&req.WriteLimit, "write-limit", "", "target directory write limit, e.g. 50MiB, or by time of day: 'unlimited,08:00-20:00=10MiB' (apart from --rate-limit, the repository transfer)")
	f.StringVar(&req.ArchiveMode, "archive-mode", "preserve", "archiving of the restored server: preserve (its configuration as backed up) or off (a copy that must not archive into the original's archive)")
	return cmd
}

func newRestoreWALCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.RestoreWALRequest{}
	cmd := &cobra.Command{
		Use:   "wal --from T1 --to T2 --target-dir DIR",
		Short: "Fetch the archived WAL of a time range (with timeline history files) into a directory, recovering nothing",
		Args:  cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			sel, err := repoops.RestoreWAL(ctx, s, req)
			if err != nil {
				return err
			}
			return jobResult(repoops.RestoreWALJobResult(sel), writeOutput(out, opts.output, sel, func(w io.Writer) error { return repoops.WriteRestoreWAL(w, req, sel) }))
		}),
	}
	bindRepoFlags(cmd, opts)
	cmd.Flags().StringVar(&req.From, "from", "", "start of the range (e.g. '2026-11-23 10:00:00+00' or RFC 3339)")
	cmd.Flags().StringVar(&req.To, "to", "", "end of the range")
	cmd.Flags().StringVar(&req.TargetDir, "target-dir", "", "directory to write the WAL files into")
	return cmd
}
