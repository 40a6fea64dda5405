package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// newCtlRemoveCommand builds `ctl remove NODE`: decommission a member for
// good (issue 18 item 4).
func newCtlRemoveCommand(opts *ctlOptions) *cobra.Command {
	var check, yes bool
	cmd := &cobra.Command{
		Use:   "remove NODE [--check] [--yes]",
		Short: "Decommission a member for good: its store membership, its slot, its place in the sync set, its status entry",
		Long: `Removes NODE from the cluster for good, after its agent was stopped (or its
host lost): its etcd member leaves the store's membership, it is marked
removed so that no agent counts it (the primary drops its replication slot,
it leaves the synchronous set), and its status entry and requests go.
Refused for the primary, while its agent still runs, and when the store
would be left without a quorum. Should its agent start again, it stops its
PostgreSQL and takes no step.`,
		Args: exactArgs(1, "give the node to remove"),
		RunE: func(cmd *cobra.Command, args []string) error {
			node, out := args[0], cmd.OutOrStdout()
			store, cfg, err := openCtlStore(opts)
			if err != nil {
				return err
			}
			defer store.Close()
			sctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			c, err := store.Load(sctx)
			var members []dcs.StoreMember
			if err == nil {
				members, err = store.Members(sctx)
			}
			cancel()
			if err != nil {
				return err
			}
			var voters []ha.StoreVoter
			for _, m := range members {
				voters = append(voters, ha.StoreVoter{Name: m.Name, Reachable: m.Reachable})
			}
			if ok, err := gate(out, opts.output, "removal of "+node, ha.RemoveChecks(c, node, voters), check); !ok {
				return err
			}
			if !yes && !confirm(os.Stdin, out, fmt.Sprintf("Remove %s from cluster %s for good? [y/N] ", node, cfg.Cluster)) {
				return badInput("remove not confirmed (use --yes in scripts)")
			}
			sctx, cancel = context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			res, err := store.RemoveNode(sctx, node)
			if err != nil {
				return fmt.Errorf("removal of %s interrupted (run it again to finish): %w", node, err)
			}
			what := []string{"marked removed"}
			if res.StoreMemberID != "" {
				what = append(what, "etcd member "+res.StoreMemberID+" removed")
			}
			_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: "remove", Target: node, By: operator(),
				Reason: "decommissioned by the operator", Result: "ok: " + strings.Join(what, ", ")})
			fmt.Fprintf(out, "%s removed from cluster %s: %s\n", node, cfg.Cluster, strings.Join(what, ", "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
