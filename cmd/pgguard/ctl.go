package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/cliout"
	"github.com/pgguard/pgguard/internal/ctlconn"
	"github.com/pgguard/pgguard/internal/explain"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/pgguard/pgguard/internal/pgtime"
	"github.com/spf13/cobra"
)

type ctlOptions struct {
	configPath string
	output     string
}

func newCtlCommand() *cobra.Command {
	opts := &ctlOptions{}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Operate a cluster: status, history",
	}
	cmd.PersistentFlags().StringVarP(&opts.configPath, "config", "c", "ctl.yaml", "ctl configuration (cluster name and etcd endpoints)")
	cmd.PersistentFlags().StringVarP(&opts.output, "output", "o", "table", "output format: table or json")
	var watch time.Duration
	var health bool
	var expect int
	status := &cobra.Command{
		Use:   "status [--watch]",
		Short: "Show every member's role, state, timeline, WAL positions and lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("watch") {
				return runCtlStatus(cmd.Context(), opts, health, expect, cmd.OutOrStdout())
			}
			if health {
				return badInput("--health checks once: drop --watch")
			}
			return cliout.Watch(cmd.Context(), watch, cmd.OutOrStdout(), func(w io.Writer) error {
				return runCtlStatus(cmd.Context(), opts, false, 0, w)
			})
		},
	}
	status.Flags().DurationVarP(&watch, "watch", "w", time.Second, "refresh in place every interval until interrupted")
	status.Flags().BoolVar(&health, "health", false, "exit 1, naming each problem, unless one primary leads and every other member streams from it with a fresh status")
	status.Flags().IntVar(&expect, "expect", 0, "with --health: the number of members that must publish their status (default: those that do)")
	status.Flags().Lookup("watch").NoOptDefVal = "1s"
	var since string
	history := &cobra.Command{
		Use:   "history [--since 1h|TIME]",
		Short: "List the cluster history: every decision and step of every node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := pgtime.Since("--since", since, time.Now())
			if err != nil {
				return badinput.Wrap(err)
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				events, err := o.History(ctx, from)
				if err != nil {
					return err
				}
				return writeOutput(out, opts.output, events, func(w io.Writer) error { return explain.WriteHistory(w, events) })
			})
		},
	}
	history.Flags().StringVar(&since, "since", "", "only events after this: a duration back from now (30m, 2h) or an RFC 3339 time")
	cmd.AddCommand(status, history, &cobra.Command{
		Use:   "explain [last | ID]",
		Short: "Print one failover or switchover as a single timeline across all nodes",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := "last"
			if len(args) == 1 {
				id = args[0]
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				ep, err := o.Explain(ctx, id)
				if err != nil {
					return err
				}
				return writeOutput(out, opts.output, ep, func(w io.Writer) error { ep.Write(w); return nil })
			})
		},
	}, newCtlDetachCommand(opts, true), newCtlDetachCommand(opts, false), newCtlRemoveCommand(opts), newCtlAddCommand(opts))
	cmd.AddCommand(newCtlConfigCommand(opts), newCtlPauseCommand(opts, true), newCtlPauseCommand(opts, false), newCtlReplayCommand(opts),
		newCtlSwitchoverCommand(opts), newCtlTakeoverCommand(opts), newCtlReinitCommand(opts),
		newCtlStopStartCommand(opts, true), newCtlStopStartCommand(opts, false), newCtlRestartCommand(opts),
		newCtlRestoreClusterCommand(opts), newCtlStoreLeaderCommand(opts), newCtlUsersCommand(opts))
	return cmd
}

func newCtlStoreLeaderCommand(opts *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "store-leader NODE",
		Short: "Move the consensus store's raft leadership to NODE's etcd member (before taking the leader's host down)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if err := o.MoveStoreLeader(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(out, "etcd raft leadership is on %s\n", args[0])
				return nil
			})
		},
	}
}

func newCtlConfigCommand(opts *ctlOptions) *cobra.Command {
	var mode, method string
	var count int
	var timeout time.Duration
	var check bool
	cmd := &cobra.Command{
		Use:   "config [--mode async|sync|strict] [--sync-count N] [--sync-method first|any] [--sync-timeout D] [--check]",
		Short: "Show or change the cluster's run-time configuration (replication mode, sync standbys)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			var ch ops.ConfigChange
			if f.Changed("mode") {
				m := ha.Mode(mode)
				ch.Mode = &m
			}
			if f.Changed("sync-count") {
				ch.SyncCount = &count
			}
			if f.Changed("sync-method") {
				ch.SyncMethod = &method
			}
			if f.Changed("sync-timeout") {
				ch.SyncTimeout = &timeout
			}
			if check && ch.Empty() {
				return badInput("--check: name the change to check (--mode, --sync-count, --sync-method, --sync-timeout)")
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if ch.Empty() {
					return printConfig(o.Config(ctx))(out, opts.output)
				}
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) { return o.PlanConfig(ctx, ch) }); done {
					return err
				}
				return printConfig(o.SetConfig(ctx, ch))(out, opts.output)
			})
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list every condition of the change with pass/fail and change nothing")
	cmd.Flags().StringVar(&mode, "mode", "", "replication mode: async, sync or strict")
	cmd.Flags().IntVar(&count, "sync-count", 1, "number of synchronous standbys")
	cmd.Flags().StringVar(&method, "sync-method", "first", "first (priority) or any (quorum)")
	cmd.Flags().DurationVar(&timeout, "sync-timeout", 30*time.Second, "in sync mode, how long commits wait for a lost standby before degrading to async")
	return cmd
}

func newCtlPauseCommand(opts *ctlOptions, pause bool) *cobra.Command {
	use, short := "pause [NODE]", "Pause automatic failover for the whole cluster (maintenance mode), or every step of one node"
	if !pause {
		use, short = "resume [NODE]", "Resume automatic failover, or one paused node"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.MaximumNArgs(1),
		Long: short + ".\n\nWith NODE, only that node's agent stops acting: no start or restart of its PostgreSQL, no\n" +
			"campaign, promotion, rewind or rebuild (a primary that runs keeps its role and its lease, and\n" +
			"any node still fences itself when it must); the rest of the cluster fails over as usual.",
		RunE: func(cmd *cobra.Command, args []string) error {
			node := ""
			if len(args) == 1 {
				node = args[0]
			}
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				return printConfig(o.Pause(ctx, node, pause))(out, opts.output)
			})
		},
	}
}

func newCtlDetachCommand(opts *ctlOptions, detach bool) *cobra.Command {
	use, short := "detach NODE [--check]", "Detach a standby: never synchronous, never promoted, no alarms while under maintenance"
	if !detach {
		use, short = "attach NODE [--check]", "Attach a detached standby again"
	}
	var check bool
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) { return o.PlanDetach(ctx, args[0], detach) }); done {
					return err
				}
				return printConfig(o.Detach(ctx, args[0], detach))(out, opts.output)
			})
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	return cmd
}

// printConfig prints the configuration an operation returned.
func printConfig(cc ha.ClusterConfig, err error) func(io.Writer, string) error {
	return func(out io.Writer, format string) error {
		if err != nil {
			return err
		}
		return writeOutput(out, format, cc, func(w io.Writer) error { _, err := fmt.Fprintln(w, cc); return err })
	}
}

// operator names who gave a command, for the history.
func operator() string {
	name := os.Getenv("USER")
	if name == "" {
		name = fmt.Sprintf("uid %d", os.Getuid())
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// connect reaches the cluster as ctl.yaml says (the API or the store).
func connect(opts *ctlOptions, out io.Writer) (*ctlconn.Conn, error) {
	if opts.output != "table" && opts.output != "json" {
		return nil, badInput("-o %q: use table or json", opts.output)
	}
	return ctlconn.Open(opts.configPath, operator(), out)
}

// withConn connects and runs fn, within timeout when it is set;
// progress lines go to the command's output.
func withConn(cmd *cobra.Command, opts *ctlOptions, timeout time.Duration, fn func(ctx context.Context, c *ctlconn.Conn, out io.Writer) error) error {
	conn, err := connect(opts, cmd.OutOrStdout())
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := cmd.Context()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return fn(ctx, conn, cmd.OutOrStdout())
}

// withOps runs fn with the cluster's operations.
func withOps(cmd *cobra.Command, opts *ctlOptions, fn func(ctx context.Context, o ops.Operator, out io.Writer) error) error {
	return withConn(cmd, opts, 0, func(ctx context.Context, c *ctlconn.Conn, out io.Writer) error { return fn(ctx, c.Ops, out) })
}

var (
	checked     = cliout.Checked
	printChecks = cliout.PrintChecks
	confirmed   = cliout.Confirmed
)
