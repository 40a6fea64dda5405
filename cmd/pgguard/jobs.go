package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/cliout"
	"github.com/pgguard/pgguard/internal/ctlconn"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// jobFlags are the settings of `jobs create` and `jobs edit`, bound
// straight into a jobs.Change.
type jobFlags struct{ c jobs.Change }

func (f *jobFlags) bind(cmd *cobra.Command) {
	fl, c, o := cmd.Flags(), &f.c, &f.c.Options
	fl.StringVar(&c.Name, "name", "", "job name (default: the id)")
	fl.StringVar(&c.Kind, "kind", "", "full, incr, logical, prune, verify, drill, copy; restore, restore-logical, restore-wal (schedule immediate, once@TIME or manual)")
	fl.StringVar(&c.Schedule, "schedule", "", "e.g. daily@02:00, hourly/1h@00:00-23:59, weekly:sun@03:00, monthly/last-day@23:00, manual; ';tz=Europe/Berlin'")
	fl.StringVar(&c.Node, "node", "", "run on this member instead of the primary")
	fl.StringVar(&c.Pre, "pre", "", "script run before: a name the nodes allow-list in node.yaml jobs.scripts (job context in PGGUARD_* variables); '' removes it")
	fl.StringArrayVar(&c.PreArgs, "pre-arg", nil, "an argument of the --pre script (repeatable)")
	fl.StringVar(&c.Post, "post", "", "script run after (PGGUARD_RUN_STATUS set), an allow-listed name; '' removes it")
	fl.StringArrayVar(&c.PostArgs, "post-arg", nil, "an argument of the --post script (repeatable)")
	fl.StringVar(&c.Precondition, "precondition", "", "allow-listed script whose non-zero exit skips the run; '' removes it")
	fl.StringArrayVar(&c.PreconArgs, "precondition-arg", nil, "an argument of the --precondition script (repeatable)")
	fl.IntVar(&o.Channels, "channels", 0, "parallel workers (backup kinds)")
	fl.IntVar(&o.Keep, "keep", 0, "prune: keep the newest N backups")
	fl.IntVar(&o.KeepDays, "keep-days", 0, "prune: also keep backups younger than D days")
	fl.StringVar(&o.WAL, "wal", "", "prune: WAL retention keep-all, covered or days:N; copy: needed (default) or all")
	fl.StringVar(&o.ToRepo, "to-repo", "", "copy: destination repository, file:///path or s3://bucket/prefix (its key: repository.copy_to.key_file or PGGUARD_TO_PASSPHRASE on the node)")
	fl.IntVar(&o.Newest, "newest", 0, "copy: only the newest N backups (default: all)")
	fl.BoolVar(&c.Disabled, "disabled", false, "create or set the job disabled")
	fl.StringVar(&o.DB, "db", "", "logical: database to dump")
	fl.StringVar(&o.Schema, "schema", "", "logical: only this schema")
	fl.StringVar(&o.Table, "table", "", "logical: only this table")
	fl.StringVar(&o.RateLimit, "rate-limit", "", "repository transfer limit, e.g. 10MiB or 'unlimited,08:00-20:00=1MiB'")
	fl.StringVar(&o.ReadLimit, "read-limit", "", "full, incr: data directory read limit, in the same form")
	fl.StringVar(&o.WriteLimit, "write-limit", "", "drill: write limit of the scratch restore, in the same form")
	fl.StringArrayVar(&o.Checks, "check", nil, "drill: SQL=EXPECTED check on the restored copy (repeatable)")
	fl.StringVar(&o.TargetDir, "target-dir", "", "restore, restore-wal: absolute directory on the node that runs the job (empty or absent)")
	fl.StringVar(&o.Backup, "backup", "", "restore, restore-logical: backup id or label:TEXT (default: the newest that fits)")
	fl.StringVar(&o.TargetTime, "target-time", "", "restore: recover to this time (with a zone)")
	fl.StringVar(&o.TargetLSN, "target-lsn", "", "restore: recover to this WAL position")
	fl.StringVar(&o.TargetXID, "target-xid", "", "restore: recover to this transaction id")
	fl.StringVar(&o.TargetName, "target-name", "", "restore: recover to this restore point")
	fl.BoolVar(&o.TargetImmediate, "target-immediate", false, "restore: recover only to the end of the backup")
	fl.BoolVar(&o.Standby, "standby", false, "restore: set the directory up as a standby that replays the archive")
	fl.StringVar(&o.Into, "into", "", "restore-logical: restore into this new database")
	fl.StringVar(&o.From, "from", "", "restore-wal: start of the time range")
	fl.StringVar(&o.To, "to", "", "restore-wal: end of the time range")
}

// apply copies the flags the user set onto j.
func (f *jobFlags) apply(cmd *cobra.Command, j *jobs.Job, now time.Time) error {
	f.c.Set = map[string]bool{}
	cmd.Flags().Visit(func(fl *pflag.Flag) { f.c.Set[fl.Name] = true })
	if err := f.c.Apply(j, now); err != nil {
		return badinput.Wrap(err)
	}
	return nil
}

func newJobsCommand() *cobra.Command {
	opts := &ctlOptions{}
	cmd := &cobra.Command{Use: "jobs", Short: "Backup jobs of the cluster: schedules, runs, history"}
	cmd.PersistentFlags().StringVarP(&opts.configPath, "config", "c", "ctl.yaml", "ctl configuration (cluster name and etcd endpoints)")
	cmd.PersistentFlags().StringVarP(&opts.output, "output", "o", "table", "output format: table or json")
	withJobs := func(cmd *cobra.Command, fn func(ctx context.Context, o ops.JobOperator, out io.Writer) error) error {
		return withConn(cmd, opts, 5*time.Second, func(ctx context.Context, c *ctlconn.Conn, out io.Writer) error { return fn(ctx, c.Jobs, out) })
	}
	printed := func(out io.Writer) func(jobs.Job, error) error {
		return func(j jobs.Job, err error) error {
			if err != nil {
				return err
			}
			return compactOutput(out, opts.output, j, func(w io.Writer) error { return jobs.WriteJob(w, j, time.Now()) })
		}
	}

	create := &jobFlags{}
	createCmd := &cobra.Command{Use: "create ID --kind K --schedule S", Short: "Create a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("kind") || !cmd.Flags().Changed("schedule") {
				return badInput("jobs create needs --kind and --schedule")
			}
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				return printed(out)(o.Create(ctx, args[0], func(j *jobs.Job) error { return create.apply(cmd, j, time.Now()) }))
			})
		}}
	create.bind(createCmd)

	edit := &jobFlags{}
	editCmd := &cobra.Command{Use: "edit ID [flags]", Short: "Change a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				return printed(out)(o.Edit(ctx, args[0], func(j *jobs.Job) error { return edit.apply(cmd, j, time.Now()) }))
			})
		}}
	edit.bind(editCmd)

	cloneCmd := &cobra.Command{Use: "clone ID NEWID", Short: "Copy a job under a new id", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				return printed(out)(o.Clone(ctx, args[0], args[1]))
			})
		}}

	listCmd := &cobra.Command{Use: "list", Short: "List jobs with their next run", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				list, runs, err := o.List(ctx)
				if err != nil {
					return err
				}
				return compactOutput(out, opts.output, list, func(w io.Writer) error { return jobs.WriteJobs(w, list, runs, time.Now()) })
			})
		}}

	showCmd := &cobra.Command{Use: "show ID", Short: "Show one job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				return printed(out)(o.Get(ctx, args[0]))
			})
		}}

	startCmd := &cobra.Command{Use: "start ID", Short: "Run a job now (on its runner node)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				if _, err := o.Start(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(out, "job %s requested; 'pgguard jobs runs %s' follows it\n", args[0], args[0])
				return nil
			})
		}}

	stopCmd := &cobra.Command{Use: "stop ID", Short: "Stop a job's running run", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				r, err := o.Stop(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "stop requested for run %s on %s\n", r.Key(), r.Node)
				return nil
			})
		}}

	deleteCmd := &cobra.Command{Use: "delete ID", Short: "Delete a job (its run history stays)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				if err := o.Delete(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(out, "job %s deleted\n", args[0])
				return nil
			})
		}}

	runsCmd := &cobra.Command{Use: "runs [ID]", Short: "List runs: status, times, bytes, speed", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return withJobs(cmd, func(ctx context.Context, o ops.JobOperator, out io.Writer) error {
				runs, err := o.Runs(ctx, id)
				if err != nil {
					return err
				}
				if runs == nil {
					runs = []jobs.Run{}
				}
				return compactOutput(out, opts.output, runs, func(w io.Writer) error { return jobs.WriteRuns(w, runs, humanBytes, time.Now()) })
			})
		}}
	cmd.AddCommand(createCmd, editCmd, cloneCmd, listCmd, showCmd, startCmd, stopCmd, deleteCmd, runsCmd)
	return cmd
}

// jobResult ends a job-capable command: it hands the agent the job's figures (jobs.Report).
var jobResult = jobs.Report

var compactOutput = cliout.Compact
