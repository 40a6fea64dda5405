package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/ops"
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
			node := args[0]
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) { return o.PlanRemove(ctx, node) }); done {
					return err
				}
				if err := confirmed(yes, out, "remove", fmt.Sprintf("Remove %s from cluster %s for good? [y/N] ", node, o.Name())); err != nil {
					return err
				}
				done, err := o.Remove(ctx, node)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s removed from cluster %s: %s\n", node, o.Name(), done)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// newCtlAddCommand builds `ctl add NODE --peer-url URL`: the first step of
// adding a node to a running cluster with embedded etcd (docs/ADD-A-NODE.md).
func newCtlAddCommand(opts *ctlOptions) *cobra.Command {
	var check bool
	var peerURL string
	cmd := &cobra.Command{
		Use:   "add NODE --peer-url URL [--check]",
		Short: "Add a node's etcd member to the running cluster, before its agent first starts (prints its initial_cluster)",
		Long: `Adds NODE's embedded etcd member, at its peer URL, to the store's
membership, and prints the etcd.embed.initial_cluster its node.yaml must
carry with initial_cluster_state: existing. Start its agent then: it joins
the store, clones the primary and streams like any standby. Refused when
the name is taken or the store would lose its quorum while the new member
has not started. docs/ADD-A-NODE.md has the whole procedure.`,
		Args: exactArgs(1, "give the new node's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := args[0]
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) { return o.PlanAdd(ctx, node, peerURL) }); done {
					return err
				}
				res, err := o.Add(ctx, node, peerURL)
				if err != nil {
					return err
				}
				return writeOutput(out, opts.output, res, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "%s added to cluster %s (etcd member %s). In %s's node.yaml:\n  etcd:\n    embed:\n      initial_cluster: %q\n      initial_cluster_state: existing\nthen start its agent.\n",
						node, o.Name(), res.StoreMemberID, node, res.InitialCluster)
					return err
				})
			})
		},
	}
	cmd.Flags().StringVar(&peerURL, "peer-url", "", "the new node's etcd.embed.peer_url")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	return cmd
}
