package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/spf13/cobra"
)

func newCtlTakeoverCommand(opts *ctlOptions) *cobra.Command {
	var to string
	var check, force, yes bool
	cmd := &cobra.Command{
		Use:   "takeover [--to NODE] [--check] [--force] [--yes]",
		Short: "Promote a standby by hand when the primary is gone and automatic failover is paused or impossible",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCtlTakeover(cmd.Context(), opts, to, check, force, yes, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "candidate (default: the healthy standby with the most WAL)")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	cmd.Flags().BoolVar(&force, "force", false, "promote even though safety conditions fail (acknowledged commits may be lost)")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func runCtlTakeover(ctx context.Context, opts *ctlOptions, to string, check, force, yes bool, out io.Writer) error {
	store, _, err := openCtlStore(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := store.Load(sctx)
	if err != nil {
		return err
	}
	if to == "" {
		to = ha.BestTakeoverCandidate(c)
	} else if _, ok := c.Members[to]; !ok {
		return badInput("--to %q: no such live member (members: %s)", to, strings.Join(peerNames(c), ", "))
	}
	checks := ha.TakeoverChecks(c, to, false)
	failed := ha.Failed(checks)
	if check {
		printChecks(out, opts.output, "takeover by "+to, checks)
		if len(failed) > 0 {
			return fmt.Errorf("%d of %d conditions fail", len(failed), len(checks))
		}
		return nil
	}
	if len(failed) > 0 && !force {
		printChecks(out, "table", "takeover by "+to+" refused", failed)
		return fmt.Errorf("takeover by %q refused: %s (--force overrides the safety conditions, not the hard ones)", to, failed[0].Detail)
	}
	if hard := ha.Failed(ha.TakeoverChecks(c, to, true)); len(hard) > 0 {
		printChecks(out, "table", "takeover by "+to+" impossible", hard)
		return fmt.Errorf("takeover by %q impossible: %s", to, hard[0].Detail)
	}
	prompt := fmt.Sprintf("Promote %s? [y/N] ", to)
	reason := "takeover"
	if len(failed) > 0 {
		m := c.Members[to]
		loss := int64(0)
		if c.Optime > m.Position() {
			loss = int64(c.Optime - m.Position())
		}
		fmt.Fprintf(out, "FORCED takeover by %s: %d safety conditions fail; up to %d bytes of WAL after %s (last primary position %s) may be lost.\n",
			to, len(failed), loss, m.Position(), c.Optime)
		prompt = fmt.Sprintf("Promote %s and accept that loss? [y/N] ", to)
		reason = fmt.Sprintf("forced takeover: up to %d bytes of WAL may be lost (%s)", loss, failed[0].Name)
	}
	if !yes && !confirm(os.Stdin, out, prompt) {
		return badInput("takeover not confirmed (use --yes in scripts)")
	}
	if err := store.RequestTakeover(sctx, ha.Takeover{To: to, Force: len(failed) > 0, By: operator()}); err != nil {
		return err
	}
	_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: "takeover-request", Target: to, By: operator(), Reason: reason, Result: "ok"})
	return waitFor(ctx, store, 60*time.Second, out, "takeover by "+to, func(c ha.Cluster) bool {
		return c.Leader != nil && c.Leader.Name == to && c.Members[to].Role == ha.RolePrimary
	})
}

// waitFor polls the store until cond holds, then prints done.
func waitFor(ctx context.Context, store *dcs.Store, limit time.Duration, out io.Writer, what string, cond func(ha.Cluster) bool) error {
	started := time.Now()
	deadline := started.Add(limit)
	var last ha.Cluster
	for time.Now().Before(deadline) {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := store.Load(lctx)
		cancel()
		if err == nil {
			last = c
			if cond(c) {
				fmt.Fprintf(out, "%s: done in %s\n", what, time.Since(started).Round(time.Millisecond))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	var states []string
	for _, n := range peerNames(last) {
		states = append(states, n+"="+last.Members[n].State)
	}
	sort.Strings(states)
	return fmt.Errorf("%s not finished after %s; last seen: %s (see 'pgguard ctl history')", what, limit, strings.Join(states, " "))
}

// waitRebuilt waits until the rebuild requests of nodes are done and each
// of them streams from leader, as published after the request was cleared:
// a record written before the rebuild (still saying "streaming") does not
// count, which the store revisions decide, not clocks.
func waitRebuilt(ctx context.Context, store *dcs.Store, limit time.Duration, out io.Writer, what, leader string, nodes ...string) error {
	began := time.Now()
	var cleared int64
	err := waitFor(ctx, store, limit, io.Discard, what, func(c ha.Cluster) bool {
		for _, n := range nodes {
			if c.Reinit[n] {
				return false
			}
		}
		cleared = c.Revision
		return true
	})
	if err != nil {
		return err
	}
	err = waitFor(ctx, store, limit, io.Discard, what, func(c ha.Cluster) bool {
		if c.Leader == nil || c.Leader.Name != leader {
			return false
		}
		for _, n := range nodes {
			m := c.Members[n]
			if m.Revision <= cleared || !m.Streaming || m.Following != leader {
				return false
			}
		}
		return true
	})
	if err == nil {
		fmt.Fprintf(out, "%s: done in %s\n", what, time.Since(began).Round(time.Millisecond))
	}
	return err
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
			store, _, err := openCtlStore(opts)
			if err != nil {
				return err
			}
			defer store.Close()
			sctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			c, err := store.Load(sctx)
			if err != nil {
				return err
			}
			if ok, err := gate(cmd.OutOrStdout(), opts.output, "reinit of "+node, ha.ReinitChecks(c, node, fromBackup), check); !ok {
				return err
			}
			source := "a base backup of " + c.Leader.Name
			if fromBackup {
				if !c.Members[node].Repository {
					return badInput("%s has no backup repository (repository.url in its config): configure one and restart its agent, or reinit without --from-backup", node)
				}
				source = "the newest backup, then streaming from " + c.Leader.Name
			}
			if !yes && !confirm(os.Stdin, cmd.OutOrStdout(), fmt.Sprintf("Rebuild %s from %s (its data directory is moved aside)? [y/N] ", node, source)) {
				return badInput("reinit not confirmed (use --yes in scripts)")
			}
			if err := store.RequestReinit(sctx, node, fromBackup, c.Revision); err != nil {
				return err
			}
			_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: "reinit-request", Target: node, By: operator(), Result: "ok", Reason: "from " + source})
			return waitRebuilt(cmd.Context(), store, 10*time.Minute, cmd.OutOrStdout(), "reinit of "+node, c.Leader.Name, node)
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
			return runCtlStopStart(cmd.Context(), opts, args, all, stop, check, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every node of the cluster")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	return cmd
}

func runCtlStopStart(ctx context.Context, opts *ctlOptions, args []string, all, stop, check bool, out io.Writer) error {
	store, _, err := openCtlStore(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := store.Load(sctx)
	cancel()
	if err != nil {
		return err
	}
	leader := ""
	if c.Leader != nil {
		leader = c.Leader.Name
	}
	var order []string
	if all {
		names := peerNames(c)
		for _, n := range c.Config.Stopped {
			if !contains(names, n) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if n != leader {
				order = append(order, n)
			}
		}
		if leader != "" {
			if stop {
				order = append(order, leader) // standbys first
			} else {
				order = append([]string{leader}, order...) // primary first
			}
		}
	} else {
		order = []string{args[0]}
	}
	var checks []ha.Check
	title := map[bool]string{true: "stop", false: "start"}[stop] + " of " + strings.Join(order, ", ")
	switch {
	case all && stop:
		checks = ha.StopAllChecks(c)
	case all:
		checks = ha.StartAllChecks(c)
	case stop:
		checks = ha.StopChecks(c, order[0])
	default:
		checks = ha.StartChecks(c, order[0])
	}
	if ok, err := gate(out, opts.output, title, checks, check); !ok {
		return err
	}
	for _, node := range order {
		if _, err := updateStopped(ctx, store, node, stop); err != nil {
			return err
		}
		what := "stop of " + node
		cond := func(c ha.Cluster) bool { return c.Members[node].State == "stopped (planned)" }
		if !stop {
			what = "start of " + node
			cond = func(c ha.Cluster) bool {
				m := c.Members[node]
				// A standby held by 'ctl replay --until' stops at its
				// target and streams no more: up and in recovery is done.
				if req, held := c.Replay[node]; held && !req.Until.IsZero() && m.Role == ha.RoleStandby {
					return m.State == "running" || m.Streaming
				}
				return m.Healthy && (m.Role == ha.RolePrimary || m.Streaming)
			}
		}
		if err := waitFor(ctx, store, 2*time.Minute, out, what, cond); err != nil {
			return err
		}
	}
	return nil
}

func updateStopped(ctx context.Context, store *dcs.Store, node string, stop bool) (ha.ClusterConfig, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg, err := store.UpdateConfig(sctx, func(c *ha.ClusterConfig) error {
		c.Stopped = ha.WithMember(c.Stopped, node, stop)
		return nil
	})
	if err != nil {
		return cfg, err
	}
	action := "start"
	if stop {
		action = "stop"
	}
	_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: action, Target: node, By: operator(), Reason: "planned " + action, Result: "ok"})
	return cfg, nil
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
			out := cmd.OutOrStdout()
			c, err := loadCluster(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if ok, err := gate(out, opts.output, "rolling restart", ha.RollingRestartChecks(c), check); !ok {
				return err
			}
			old := c.Leader.Name
			if !yes && !confirm(os.Stdin, out, "Restart every node, switching the primary over once? [y/N] ") {
				return badInput("restart not confirmed (use --yes in scripts)")
			}
			for _, n := range peerNames(c) {
				if n == old {
					continue
				}
				for _, stop := range []bool{true, false} {
					if err := runCtlStopStart(cmd.Context(), opts, []string{n}, false, stop, false, out); err != nil {
						return err
					}
				}
			}
			if err := runCtlSwitchover(cmd.Context(), opts, &switchoverOptions{yes: true, waitFor: 60 * time.Second}, out); err != nil {
				return err
			}
			for _, stop := range []bool{true, false} {
				if err := runCtlStopStart(cmd.Context(), opts, []string{old}, false, stop, false, out); err != nil {
					return err
				}
			}
			fmt.Fprintln(out, "rolling restart done")
			return nil
		},
	}
	cmd.Flags().BoolVar(&rolling, "rolling", false, "standbys one by one, then switchover, then the old primary")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
