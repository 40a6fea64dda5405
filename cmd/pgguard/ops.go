package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgguard/pgguard/internal/ops"
	"github.com/spf13/cobra"
)

func newCtlSwitchoverCommand(opts *ctlOptions) *cobra.Command {
	var req ops.SwitchoverRequest
	var at string
	var check, yes, cancel bool
	cmd := &cobra.Command{
		Use:   "switchover [--to NODE] [--at TIME] [--check] [--yes] [--cancel]",
		Short: "Hand the primary role to a standby with no lost write, now or at a given time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return badInput("--at %q: use RFC 3339, e.g. 2026-11-23T22:00:00Z", at)
				}
				req.At = t
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if cancel {
					if err := o.CancelSwitchover(ctx); err != nil {
						return err
					}
					fmt.Fprintln(out, "switchover cancelled")
					return nil
				}
				if check {
					req.Settle = 0
				}
				from, to, plan, err := o.PlanSwitchover(ctx, req)
				if err != nil {
					return err
				}
				if check || opts.output == "json" {
					printChecks(out, opts.output, plan.Op, plan.Checks)
					if check && !plan.OK {
						return fmt.Errorf("%d of %d conditions fail", len(plan.Failed()), len(plan.Checks))
					} else if check {
						return nil
					}
				}
				if err := plan.Refusal(); err != nil {
					return err
				}
				if err := confirmed(yes, out, "switchover", fmt.Sprintf("Switch the primary from %s to %s? [y/N] ", from, to)); err != nil {
					return err
				}
				req.To = to
				res, err := o.Switchover(ctx, req)
				if err != nil {
					return err
				}
				if !res.Scheduled.IsZero() {
					fmt.Fprintf(out, "switchover %s → %s scheduled for %s ('pgguard ctl switchover --cancel' to cancel)\n", res.From, res.To, res.Scheduled.Format(time.RFC3339))
					return nil
				}
				fmt.Fprintf(out, "switchover %s → %s done in %s; write outage %s\n", res.From, res.To, res.Took.Round(time.Millisecond), res.OutageText())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.To, "to", "", "candidate (default: the best caught-up standby)")
	f.StringVar(&at, "at", "", "schedule for this time (RFC 3339, e.g. 2026-11-23T22:00:00Z)")
	f.BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&cancel, "cancel", false, "cancel a scheduled switchover")
	f.DurationVar(&req.Wait, "wait", 60*time.Second, "how long to wait for the switchover to finish")
	f.DurationVar(&req.Settle, "settle", 10*time.Second, "how long a candidate that is only catching up may take before the switchover is refused")
	return cmd
}

func newCtlTakeoverCommand(opts *ctlOptions) *cobra.Command {
	var to string
	var check, force, yes bool
	cmd := &cobra.Command{
		Use:   "takeover [--to NODE] [--check] [--force] [--yes]",
		Short: "Promote a standby by hand when the primary is gone and automatic failover is paused or impossible",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				p, err := o.PlanTakeover(ctx, to)
				if err != nil {
					return err
				}
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) { return p.Plan, nil }); check {
					return err
				} else if done && !force {
					return &ops.RefusedError{Plan: p.Plan, Hint: " (--force overrides the safety conditions, not the hard ones)"}
				}
				prompt := fmt.Sprintf("Promote %s? [y/N] ", p.To)
				if !p.OK && len(p.Hard) == 0 {
					fmt.Fprintf(out, "FORCED takeover by %s: %d safety conditions fail; up to %d bytes of WAL after %s (last primary position %s) may be lost.\n",
						p.To, len(p.Failed()), p.Loss, p.Position, p.Optime)
					prompt = fmt.Sprintf("Promote %s and accept that loss? [y/N] ", p.To)
				}
				if len(p.Hard) == 0 {
					if err := confirmed(yes, out, "takeover", prompt); err != nil {
						return err
					}
				}
				_, err = o.Takeover(ctx, p.To, force, 60*time.Second)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "candidate (default: the healthy standby with the most WAL)")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "promote even though safety conditions fail (acknowledged commits may be lost)")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func newCtlReinitCommand(opts *ctlOptions) *cobra.Command {
	var yes, fromBackup, check bool
	cmd := &cobra.Command{
		Use:   "reinit NODE [--from-backup] [--check] [--yes]",
		Short: "Rebuild a standby (or a split node) from a base backup of the primary, or from the newest backup; its old data directory is kept aside",
		Long: `Rebuilds NODE's data directory; the old one is moved aside (the newest
such copy is kept next to it as <data_dir>.failed-<time>).

By default NODE clones the primary with pg_basebackup. With --from-backup it
restores the newest backup of its repository (repository.url in its config)
instead, replays the archived WAL and then streams from the primary: the
primary only serves the WAL written since that backup, which is faster and
lighter on the primary for a large database.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				var p ops.ReinitPlan
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) {
					var err error
					p, err = o.PlanReinit(ctx, node, fromBackup)
					return p.Plan, err
				}); done {
					return err
				}
				if err := confirmed(yes, out, "reinit", fmt.Sprintf("Rebuild %s from %s (its data directory is moved aside)? [y/N] ", node, p.Source)); err != nil {
					return err
				}
				return o.Reinit(ctx, node, fromBackup, 10*time.Minute)
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&fromBackup, "from-backup", false, "restore the newest backup of the node's repository, then catch up from the archive and the primary")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	return cmd
}

// newCtlStopStartCommand builds `ctl stop` and `ctl start`: a planned
// stop promotes nobody; --all stops standbys first and starts the primary
// first.
func newCtlStopStartCommand(opts *ctlOptions, stop bool) *cobra.Command {
	var all, check bool
	use, short := "stop [NODE | --all]", "Stop PostgreSQL on a node or the whole cluster in the safe order (nobody is promoted)"
	if !stop {
		use, short = "start [NODE | --all]", "Start what 'ctl stop' stopped, primary first"
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return badInput("name one NODE or give --all")
			}
			node := ""
			if !all {
				node = args[0]
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) {
					p, err := o.PlanStopStart(ctx, node, stop)
					return p.Plan, err
				}); done {
					return err
				}
				return o.StopStart(ctx, node, stop, 2*time.Minute)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every node of the cluster")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	return cmd
}

func newCtlRestartCommand(opts *ctlOptions) *cobra.Command {
	var rolling, yes, check bool
	cmd := &cobra.Command{
		Use:   "restart --rolling [--check] [--yes]",
		Short: "Restart every node with no lost write: standbys one by one, then a switchover, then the old primary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !rolling {
				return badInput("only --rolling restarts are supported (ctl stop/start restart one node)")
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) { return o.PlanRollingRestart(ctx) }); done {
					return err
				}
				if err := confirmed(yes, out, "restart", "Restart every node, switching the primary over once? [y/N] "); err != nil {
					return err
				}
				if err := o.RollingRestart(ctx); err != nil {
					return err
				}
				fmt.Fprintln(out, "rolling restart done")
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&rolling, "rolling", false, "standbys one by one, then switchover, then the old primary")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
