package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/explain"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
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
			return watchStatus(cmd.Context(), opts, watch, cmd.OutOrStdout())
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
			from, err := parseSince(since, time.Now())
			if err != nil {
				return usageError{err}
			}
			return runCtlHistory(cmd.Context(), opts, from, cmd.OutOrStdout())
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
			return runCtlExplain(cmd.Context(), opts, id, cmd.OutOrStdout())
		},
	}, newCtlDetachCommand(opts, true), newCtlDetachCommand(opts, false), newCtlRemoveCommand(opts), newCtlAddCommand(opts))
	cmd.AddCommand(newCtlConfigCommand(opts), newCtlPauseCommand(opts, true), newCtlPauseCommand(opts, false), newCtlReplayCommand(opts),
		newCtlSwitchoverCommand(opts), newCtlTakeoverCommand(opts), newCtlReinitCommand(opts),
		newCtlStopStartCommand(opts, true), newCtlStopStartCommand(opts, false), newCtlRestartCommand(opts),
		newCtlRestoreClusterCommand(opts), newCtlStoreLeaderCommand(opts))
	return cmd
}

func newCtlStoreLeaderCommand(opts *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "store-leader NODE",
		Short: "Move the consensus store's raft leadership to NODE's etcd member (before taking the leader's host down)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withCtlStore(cmd.Context(), opts, func(sctx context.Context, store *dcs.Store, cfg config.Ctl) error {
				if err := store.MoveStoreLeader(sctx, args[0]); err != nil {
					return err
				}
				_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: ha.EventStoreLeaderMove, Target: args[0], By: operator(), Result: "ok"})
				fmt.Fprintf(cmd.OutOrStdout(), "etcd raft leadership is on %s\n", args[0])
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
			edit := func(c *ha.ClusterConfig) error {
				if f.Changed("mode") {
					c.Mode = ha.Mode(mode)
				}
				if f.Changed("sync-count") {
					c.SyncCount = count
				}
				if f.Changed("sync-method") {
					c.SyncMethod = method
				}
				if f.Changed("sync-timeout") {
					c.SyncTimeoutMs = timeout.Milliseconds()
				}
				return nil
			}
			change := anyOf(f.Changed, "mode", "sync-count", "sync-method", "sync-timeout")
			if change {
				c, err := loadCluster(cmd.Context(), opts)
				if err != nil {
					return err
				}
				next := c.Config
				if err := edit(&next); err != nil {
					return err
				}
				if ok, err := gate(cmd.OutOrStdout(), opts.output, "configuration change", ha.ConfigChecks(c, next), check); !ok {
					return err
				}
			} else if check {
				return badInput("--check: name the change to check (--mode, --sync-count, --sync-method, --sync-timeout)")
			}
			return runCtlConfig(cmd.Context(), opts, cmd.OutOrStdout(), edit, change)
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list every condition of the change with pass/fail and change nothing")
	cmd.Flags().StringVar(&mode, "mode", "", "replication mode: async, sync or strict")
	cmd.Flags().IntVar(&count, "sync-count", 1, "number of synchronous standbys")
	cmd.Flags().StringVar(&method, "sync-method", "first", "first (priority) or any (quorum)")
	cmd.Flags().DurationVar(&timeout, "sync-timeout", 30*time.Second, "in sync mode, how long commits wait for a lost standby before degrading to async")
	return cmd
}

func anyOf(changed func(string) bool, names ...string) bool {
	for _, n := range names {
		if changed(n) {
			return true
		}
	}
	return false
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
			if len(args) == 0 {
				return runCtlConfig(cmd.Context(), opts, cmd.OutOrStdout(), func(c *ha.ClusterConfig) error {
					c.Paused = pause
					return nil
				}, true)
			}
			node := args[0]
			if err := checkKnownNode(cmd.Context(), opts, node); err != nil {
				return err
			}
			return runCtlConfig(cmd.Context(), opts, cmd.OutOrStdout(), func(c *ha.ClusterConfig) error {
				c.PausedNodes = ha.WithMember(c.PausedNodes, node, pause)
				return nil
			}, true)
		},
	}
}

// checkKnownNode refuses a node that neither publishes a status nor has a
// member in the embedded store.
func checkKnownNode(ctx context.Context, opts *ctlOptions, node string) error {
	return withCtlStore(ctx, opts, func(sctx context.Context, store *dcs.Store, cfg config.Ctl) error {
		r, err := demo.ReadStatus(sctx, store, cfg.Cluster, true)
		if err != nil {
			return err
		}
		var known []string
		for _, m := range r.Members {
			if m.Name == node {
				return nil
			}
			known = append(known, m.Name)
		}
		for _, m := range r.Store {
			if m.Name == node {
				return nil
			}
		}
		return badInput("unknown node %q: the members of cluster %s are %s", node, cfg.Cluster, strings.Join(known, ", "))
	})
}

// runCtlConfig prints the cluster configuration, after applying edit when
// change is set (a compare-and-swap in the store, recorded in the history).
func runCtlConfig(ctx context.Context, opts *ctlOptions, out io.Writer, edit func(*ha.ClusterConfig) error, change bool) error {
	store, cfg, err := openCtlStore(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var cc ha.ClusterConfig
	if change {
		before, err := store.Load(sctx)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cfg.Cluster, err)
		}
		cc, err = store.UpdateConfig(sctx, edit)
		if err != nil {
			if strings.HasPrefix(err.Error(), "invalid cluster config") {
				return usageError{err}
			}
			return err
		}
		if err := store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: ha.EventConfig, By: operator(),
			Reason: describeConfigChange(before.Config, cc), Result: "ok"}); err != nil {
			return err
		}
	} else {
		c, err := store.Load(sctx)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", cfg.Cluster, err)
		}
		cc = c.Config
	}
	if opts.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(cc)
	}
	fmt.Fprintf(out, "mode %s   sync_count %d   sync_method %s   sync_timeout %s   paused %v   paused nodes %v   detached %v\n",
		cc.Mode, cc.SyncCount, cc.SyncMethod, cc.SyncTimeout(), cc.Paused, cc.PausedNodes, cc.Detached)
	return nil
}

func describeConfigChange(a, b ha.ClusterConfig) string {
	var parts []string
	if a.Mode != b.Mode {
		parts = append(parts, fmt.Sprintf("mode %s → %s", a.Mode, b.Mode))
	}
	if a.SyncCount != b.SyncCount {
		parts = append(parts, fmt.Sprintf("sync_count %d → %d", a.SyncCount, b.SyncCount))
	}
	if a.SyncMethod != b.SyncMethod {
		parts = append(parts, fmt.Sprintf("sync_method %s → %s", a.SyncMethod, b.SyncMethod))
	}
	if a.SyncTimeoutMs != b.SyncTimeoutMs {
		parts = append(parts, fmt.Sprintf("sync_timeout %s → %s", a.SyncTimeout(), b.SyncTimeout()))
	}
	if strings.Join(a.Detached, ",") != strings.Join(b.Detached, ",") {
		parts = append(parts, fmt.Sprintf("detached %v → %v", a.Detached, b.Detached))
	}
	if strings.Join(a.PausedNodes, ",") != strings.Join(b.PausedNodes, ",") {
		parts = append(parts, fmt.Sprintf("paused nodes %v → %v", a.PausedNodes, b.PausedNodes))
	}
	if a.Paused != b.Paused {
		parts = append(parts, fmt.Sprintf("paused %v → %v", a.Paused, b.Paused))
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
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

func openCtlStore(opts *ctlOptions) (*dcs.Store, config.Ctl, error) {
	if opts.output != "table" && opts.output != "json" {
		return nil, config.Ctl{}, badInput("-o %q: use table or json", opts.output)
	}
	cfg, err := config.LoadCtl(opts.configPath)
	if err != nil {
		return nil, cfg, usageError{err}
	}
	storeTLS, err := cfg.Etcd.TLS.ClientConfig()
	if err != nil {
		return nil, cfg, usageError{fmt.Errorf("ctl config %s: etcd.tls: %w", opts.configPath, err)}
	}
	store, err := dcs.Open(dcs.Options{Endpoints: cfg.Etcd.Endpoints, DialTimeout: cfg.Etcd.DialTimeout.D(), Cluster: cfg.Cluster, TTL: 4 * time.Second, TLS: storeTLS})
	return store, cfg, err
}

// loadCluster reads the cluster once, for commands that check before they act.
func loadCluster(ctx context.Context, opts *ctlOptions) (ha.Cluster, error) {
	var c ha.Cluster
	err := withCtlStore(ctx, opts, func(sctx context.Context, store *dcs.Store, _ config.Ctl) error {
		var err error
		c, err = store.Load(sctx)
		return err
	})
	return c, err
}

// withCtlStore opens the store, runs fn with a bounded context, closes it.
func withCtlStore(ctx context.Context, opts *ctlOptions, fn func(ctx context.Context, store *dcs.Store, cfg config.Ctl) error) error {
	store, cfg, err := openCtlStore(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return fn(sctx, store, cfg)
}

func runCtlStatus(ctx context.Context, opts *ctlOptions, health bool, expect int, out io.Writer) error {
	return withCtlStore(ctx, opts, func(sctx context.Context, store *dcs.Store, cfg config.Ctl) error {
		r, err := printStatus(sctx, store, cfg, opts.output, out)
		if err != nil || !health {
			return err
		}
		if p := r.Problems(max(expect, len(r.Members))); len(p) > 0 {
			return fmt.Errorf("cluster %s is not healthy: %s", cfg.Cluster, strings.Join(p, "; "))
		}
		return nil
	})
}

func printStatus(sctx context.Context, store *dcs.Store, cfg config.Ctl, output string, out io.Writer) (status.Report, error) {
	r, err := demo.ReadStatus(sctx, store, cfg.Cluster, true)
	if err != nil {
		return r, fmt.Errorf("status of cluster %s: %w", cfg.Cluster, err)
	}
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return r, enc.Encode(r)
	}
	return r, r.WriteTable(out)
}

func runCtlHistory(ctx context.Context, opts *ctlOptions, since time.Time, out io.Writer) error {
	return withCtlStore(ctx, opts, func(sctx context.Context, store *dcs.Store, cfg config.Ctl) error {
		return printHistory(sctx, store, cfg, since, opts.output, out)
	})
}

func printHistory(sctx context.Context, store *dcs.Store, cfg config.Ctl, since time.Time, output string, out io.Writer) error {
	events, err := store.History(sctx, since)
	if err != nil {
		return fmt.Errorf("history of cluster %s: %w", cfg.Cluster, err)
	}
	if output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(events)
	}
	for _, e := range events {
		target := ""
		if e.Target != "" {
			target = " → " + e.Target
		}
		by := ""
		if e.By != "" {
			by = " (by " + e.By + ")"
		}
		fmt.Fprintf(out, "%s  %-4s %-20s%s  %s%s  [%s]  id=%s\n", e.Time.Format("2006-01-02 15:04:05.000"), e.Node, e.Action, target,
			e.Reason, by, e.Result, e.Key[strings.LastIndex(e.Key, "/")+1:])
	}
	return nil
}

// parseSince reads --since: empty (everything), a duration back from now,
// or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give a duration (30m, 2h) or an RFC 3339 time (2026-11-23T10:00:00Z)", v)
}

func runCtlExplain(ctx context.Context, opts *ctlOptions, id string, out io.Writer) error {
	return withCtlStore(ctx, opts, func(sctx context.Context, store *dcs.Store, cfg config.Ctl) error {
		events, err := store.History(sctx, time.Time{})
		if err != nil {
			return fmt.Errorf("history of cluster %s: %w", cfg.Cluster, err)
		}
		ep, err := explain.Find(events, id)
		if err != nil {
			return usageError{err}
		}
		if opts.output == "json" {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(ep)
		}
		ep.Write(out)
		return nil
	})
}

// watchStatus redraws the status table in place until interrupted.
func watchStatus(ctx context.Context, opts *ctlOptions, every time.Duration, out io.Writer) error {
	if every < 100*time.Millisecond {
		return badInput("--watch %s: at least 100ms", every)
	}
	for {
		var b strings.Builder
		if err := runCtlStatus(ctx, opts, false, 0, &b); err != nil {
			b.WriteString("error: " + err.Error() + "\n")
		}
		// Clear the screen and home the cursor, then draw.
		fmt.Fprintf(out, "\x1b[H\x1b[2J%s\n%s (every %s; Ctrl-C to stop)\n", b.String(), time.Now().Format("15:04:05"), every)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
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
			node := args[0]
			c, err := loadCluster(cmd.Context(), opts)
			if err != nil {
				return err
			}
			title := map[bool]string{true: "detach", false: "attach"}[detach] + " of " + node
			if ok, err := gate(cmd.OutOrStdout(), opts.output, title, ha.DetachChecks(c, node, detach), check); !ok {
				return err
			}
			return runCtlConfig(cmd.Context(), opts, cmd.OutOrStdout(), func(cc *ha.ClusterConfig) error {
				cc.Detached = ha.WithMember(cc.Detached, node, detach)
				return nil
			}, true)
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	return cmd
}
