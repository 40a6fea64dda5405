package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/spf13/cobra"
)

// jobFlags are the settings of `jobs create` and `jobs edit`.
type jobFlags struct {
	name, kind, sched, node      string
	pre, post, precondition, wal string
	preArgs, postArgs, condArgs  []string
	channels, keep, keepDays     int
	disabled                     bool
	checks                       []string
	rate, readLimit, writeLimit  string
	toRepo                       string
	newest                       int
	db, schema, table            string
	targetDir, backupRef, into   string
	tTime, tLSN, tXID, tName     string
	tImmediate, standby          bool
	from, to                     string
}

func (f *jobFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "job name (default: the id)")
	fl.StringVar(&f.kind, "kind", "", "full, incr, logical, prune, verify, drill, copy; restore, restore-logical, restore-wal (schedule immediate, once@TIME or manual)")
	fl.StringVar(&f.sched, "schedule", "", "e.g. daily@02:00, hourly/1h@00:00-23:59, weekly:sun@03:00, monthly/last-day@23:00, manual; ';tz=Europe/Berlin'")
	fl.StringVar(&f.node, "node", "", "run on this member instead of the primary")
	fl.StringVar(&f.pre, "pre", "", "script run before: a name the nodes allow-list in node.yaml jobs.scripts (job context in PGGUARD_* variables); '' removes it")
	fl.StringArrayVar(&f.preArgs, "pre-arg", nil, "an argument of the --pre script (repeatable)")
	fl.StringVar(&f.post, "post", "", "script run after (PGGUARD_RUN_STATUS set), an allow-listed name; '' removes it")
	fl.StringArrayVar(&f.postArgs, "post-arg", nil, "an argument of the --post script (repeatable)")
	fl.StringVar(&f.precondition, "precondition", "", "allow-listed script whose non-zero exit skips the run; '' removes it")
	fl.StringArrayVar(&f.condArgs, "precondition-arg", nil, "an argument of the --precondition script (repeatable)")
	fl.IntVar(&f.channels, "channels", 0, "parallel workers (backup kinds)")
	fl.IntVar(&f.keep, "keep", 0, "prune: keep the newest N backups")
	fl.IntVar(&f.keepDays, "keep-days", 0, "prune: also keep backups younger than D days")
	fl.StringVar(&f.wal, "wal", "", "prune: WAL retention keep-all, covered or days:N; copy: needed (default) or all")
	fl.StringVar(&f.toRepo, "to-repo", "", "copy: destination repository, file:///path or s3://bucket/prefix (its key: repository.copy_to.key_file or PGGUARD_TO_PASSPHRASE on the node)")
	fl.IntVar(&f.newest, "newest", 0, "copy: only the newest N backups (default: all)")
	fl.BoolVar(&f.disabled, "disabled", false, "create or set the job disabled")
	fl.StringVar(&f.db, "db", "", "logical: database to dump")
	fl.StringVar(&f.schema, "schema", "", "logical: only this schema")
	fl.StringVar(&f.table, "table", "", "logical: only this table")
	fl.StringVar(&f.rate, "rate-limit", "", "repository transfer limit, e.g. 10MiB or 'unlimited,08:00-20:00=1MiB'")
	fl.StringVar(&f.readLimit, "read-limit", "", "full, incr: data directory read limit, in the same form")
	fl.StringVar(&f.writeLimit, "write-limit", "", "drill: write limit of the scratch restore, in the same form")
	fl.StringArrayVar(&f.checks, "check", nil, "drill: SQL=EXPECTED check on the restored copy (repeatable)")
	fl.StringVar(&f.targetDir, "target-dir", "", "restore, restore-wal: absolute directory on the node that runs the job (empty or absent)")
	fl.StringVar(&f.backupRef, "backup", "", "restore, restore-logical: backup id or label:TEXT (default: the newest that fits)")
	fl.StringVar(&f.tTime, "target-time", "", "restore: recover to this time (with a zone)")
	fl.StringVar(&f.tLSN, "target-lsn", "", "restore: recover to this WAL position")
	fl.StringVar(&f.tXID, "target-xid", "", "restore: recover to this transaction id")
	fl.StringVar(&f.tName, "target-name", "", "restore: recover to this restore point")
	fl.BoolVar(&f.tImmediate, "target-immediate", false, "restore: recover only to the end of the backup")
	fl.BoolVar(&f.standby, "standby", false, "restore: set the directory up as a standby that replays the archive")
	fl.StringVar(&f.into, "into", "", "restore-logical: restore into this new database")
	fl.StringVar(&f.from, "from", "", "restore-wal: start of the time range")
	fl.StringVar(&f.to, "to", "", "restore-wal: end of the time range")
}

// setScript applies a script flag and its argument flags: an empty name
// removes the script; arguments alone replace those of the script set.
func setScript(s **jobs.Script, name string, args []string, nameSet, argsSet bool) {
	switch {
	case nameSet && name == "":
		*s = nil
	case nameSet:
		*s = &jobs.Script{Name: name, Args: args}
	case argsSet && *s != nil:
		(*s).Args = args
	}
}

// apply copies the flags the user set onto j.
func (f *jobFlags) apply(cmd *cobra.Command, j *jobs.Job, now time.Time) error {
	ch := cmd.Flags().Changed
	if ch("name") {
		j.Name = f.name
	}
	if ch("kind") {
		j.Kind = jobs.Kind(f.kind)
	}
	if ch("schedule") {
		s, err := schedule.Parse(f.sched, now)
		if err != nil {
			return badInput("--schedule: %v", err)
		}
		j.Schedule = s
	}
	if ch("node") {
		j.Node = f.node
	}
	setScript(&j.PreScript, f.pre, f.preArgs, ch("pre"), ch("pre-arg"))
	setScript(&j.PostScript, f.post, f.postArgs, ch("post"), ch("post-arg"))
	setScript(&j.Precondition, f.precondition, f.condArgs, ch("precondition"), ch("precondition-arg"))
	if ch("channels") {
		j.Options.Channels = f.channels
	}
	if ch("keep") {
		j.Options.Keep = f.keep
	}
	if ch("keep-days") {
		j.Options.KeepDays = f.keepDays
	}
	if ch("wal") {
		j.Options.WAL = f.wal
	}
	if ch("db") {
		j.Options.DB = f.db
	}
	if ch("schema") {
		j.Options.Schema = f.schema
	}
	if ch("table") {
		j.Options.Table = f.table
	}
	if ch("rate-limit") {
		if _, err := parseRateSchedule(f.rate); err != nil {
			return badInput("--rate-limit: %v", err)
		}
		j.Options.RateLimit = f.rate
	}
	if ch("read-limit") {
		if _, err := parseRateSchedule(f.readLimit); err != nil {
			return badInput("--read-limit: %v", err)
		}
		j.Options.ReadLimit = f.readLimit
	}
	if ch("write-limit") {
		if _, err := parseRateSchedule(f.writeLimit); err != nil {
			return badInput("--write-limit: %v", err)
		}
		j.Options.WriteLimit = f.writeLimit
	}
	if ch("to-repo") {
		j.Options.ToRepo = f.toRepo
	}
	if ch("newest") {
		j.Options.Newest = f.newest
	}
	if ch("check") {
		j.Options.Checks = f.checks
	}
	for flag, set := range map[string]func(){
		"target-dir":       func() { j.Options.TargetDir = f.targetDir },
		"backup":           func() { j.Options.Backup = f.backupRef },
		"target-time":      func() { j.Options.TargetTime = f.tTime },
		"target-lsn":       func() { j.Options.TargetLSN = f.tLSN },
		"target-xid":       func() { j.Options.TargetXID = f.tXID },
		"target-name":      func() { j.Options.TargetName = f.tName },
		"target-immediate": func() { j.Options.TargetImmediate = f.tImmediate },
		"standby":          func() { j.Options.Standby = f.standby },
		"into":             func() { j.Options.Into = f.into },
		"from":             func() { j.Options.From = f.from },
		"to":               func() { j.Options.To = f.to },
	} {
		if ch(flag) {
			set()
		}
	}
	if ch("disabled") {
		j.Enabled = !f.disabled
	}
	j.Updated = now
	if err := j.Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

func newJobsCommand() *cobra.Command {
	opts := &ctlOptions{}
	cmd := &cobra.Command{Use: "jobs", Short: "Backup jobs of the cluster: schedules, runs, history"}
	cmd.PersistentFlags().StringVarP(&opts.configPath, "config", "c", "ctl.yaml", "ctl configuration (cluster name and etcd endpoints)")
	cmd.PersistentFlags().StringVarP(&opts.output, "output", "o", "table", "output format: table or json")
	withJobs := func(cmd *cobra.Command, fn func(ctx context.Context, o *ops.Jobs, out io.Writer) error) error {
		s, _, err := openCtlStore(opts)
		if err != nil {
			return err
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		return fn(ctx, &ops.Jobs{Store: s, By: operator()}, cmd.OutOrStdout())
	}
	printed := func(out io.Writer) func(jobs.Job, error) error {
		return func(j jobs.Job, err error) error {
			if err != nil {
				return err
			}
			return printJob(out, opts.output, j, time.Now())
		}
	}

	create := &jobFlags{}
	createCmd := &cobra.Command{Use: "create ID --kind K --schedule S", Short: "Create a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("kind") || !cmd.Flags().Changed("schedule") {
				return badInput("jobs create needs --kind and --schedule")
			}
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
				return printed(out)(o.Create(ctx, args[0], func(j *jobs.Job) error { return create.apply(cmd, j, time.Now()) }))
			})
		}}
	create.bind(createCmd)

	edit := &jobFlags{}
	editCmd := &cobra.Command{Use: "edit ID [flags]", Short: "Change a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
				return printed(out)(o.Edit(ctx, args[0], func(j *jobs.Job) error { return edit.apply(cmd, j, time.Now()) }))
			})
		}}
	edit.bind(editCmd)

	cloneCmd := &cobra.Command{Use: "clone ID NEWID", Short: "Copy a job under a new id", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
				return printed(out)(o.Clone(ctx, args[0], args[1]))
			})
		}}

	listCmd := &cobra.Command{Use: "list", Short: "List jobs with their next run", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
				list, runs, err := o.List(ctx)
				if err != nil {
					return err
				}
				return printJobs(out, opts.output, list, runs, time.Now())
			})
		}}

	showCmd := &cobra.Command{Use: "show ID", Short: "Show one job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
				return printed(out)(o.Get(ctx, args[0]))
			})
		}}

	startCmd := &cobra.Command{Use: "start ID", Short: "Run a job now (on its runner node)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
				if _, err := o.Start(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(out, "job %s requested; 'pgguard jobs runs %s' follows it\n", args[0], args[0])
				return nil
			})
		}}

	stopCmd := &cobra.Command{Use: "stop ID", Short: "Stop a job's running run", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
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
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
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
			return withJobs(cmd, func(ctx context.Context, o *ops.Jobs, out io.Writer) error {
				runs, err := o.Runs(ctx, id)
				if err != nil {
					return err
				}
				return printRuns(out, opts.output, runs)
			})
		}}
	cmd.AddCommand(createCmd, editCmd, cloneCmd, listCmd, showCmd, startCmd, stopCmd, deleteCmd, runsCmd)
	return cmd
}

func printJob(out io.Writer, format string, j jobs.Job, now time.Time) error {
	if format == "json" {
		return json.NewEncoder(out).Encode(j)
	}
	next, ok := j.Schedule.Next(now)
	nextS := "never"
	if ok && j.Enabled {
		nextS = next.Format(time.RFC3339)
	}
	node := j.Node
	if node == "" {
		node = "(primary)"
	}
	fmt.Fprintf(out, "job %s (%s): %s, schedule %s [%s], runs on %s, enabled %v, next %s\n",
		j.ID, j.Name, j.Kind, j.Schedule.String(), j.Schedule.Format(), node, j.Enabled, nextS)
	return nil
}

func printJobs(out io.Writer, format string, list []jobs.Job, runs map[string][]jobs.Run, now time.Time) error {
	if format == "json" {
		return json.NewEncoder(out).Encode(list)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSCHEDULE\tNODE\tENABLED\tNEXT\tLAST RUN")
	for _, j := range list {
		next, ok := j.Schedule.Next(now)
		nextS := "-"
		if ok && j.Enabled {
			nextS = next.Format("2006-01-02 15:04 MST")
		}
		last := "-"
		if rs := runs[j.ID]; len(rs) > 0 {
			r := rs[len(rs)-1]
			last = fmt.Sprintf("%s %s", r.Status, r.Trigger.Format("2006-01-02 15:04"))
		}
		node := j.Node
		if node == "" {
			node = "(primary)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", j.ID, j.Kind, j.Schedule.Format(), node, j.Enabled, nextS, last)
	}
	return tw.Flush()
}

func printRuns(out io.Writer, format string, runs []jobs.Run) error {
	if format == "json" {
		if runs == nil {
			runs = []jobs.Run{}
		}
		return json.NewEncoder(out).Encode(runs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tTRIGGER\tTRY\tNODE\tSTATUS\tTOOK\tREAD\tSTORED\tSPEED\tMESSAGE")
	for _, r := range runs {
		took := "-"
		if !r.Ended.IsZero() {
			took = r.Ended.Sub(r.Started).Round(time.Millisecond).String()
		}
		msg := strings.TrimSpace(r.Message)
		if r.Progress != nil && r.Ended.IsZero() {
			took = time.Since(r.Started).Round(time.Second).String() + "…"
			msg = r.Progress.String(humanBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s/s\t%s\n", r.Job, r.Trigger.Format("2006-01-02 15:04:05"), r.Attempt, r.Node,
			r.Status, took, humanBytes(r.BytesRead), humanBytes(r.BytesStored), humanBytes(int64(r.Speed)), msg)
	}
	return tw.Flush()
}
