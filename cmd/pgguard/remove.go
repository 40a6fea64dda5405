package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/config"
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
			store, cfg, ok, err := gateMembership(cmd.Context(), opts, out, "removal of "+node, check,
				func(c ha.Cluster, v []ha.StoreVoter) []ha.Check { return ha.RemoveChecks(c, node, v) })
			if !ok {
				return err
			}
			defer store.Close()
			if !yes && !confirm(os.Stdin, out, fmt.Sprintf("Remove %s from cluster %s for good? [y/N] ", node, cfg.Cluster)) {
				return badInput("remove not confirmed (use --yes in scripts)")
			}
			sctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			res, err := store.RemoveNode(sctx, node)
			if err != nil {
				return fmt.Errorf("removal of %s interrupted (run it again to finish): %w", node, err)
			}
			what := []string{"marked removed"}
			if res.StoreMemberID != "" {
				what = append(what, "etcd member "+res.StoreMemberID+" removed")
			}
			_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: ha.EventRemove, Target: node, By: operator(),
				Reason: "decommissioned by the operator", Result: "ok: " + strings.Join(what, ", ")})
			fmt.Fprintf(out, "%s removed from cluster %s: %s\n", node, cfg.Cluster, strings.Join(what, ", "))
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// gateMembership opens the store, reads the cluster and the store's
// members, and gates an add or remove on checks(cluster, voters); the
// store is returned open (close it) when the operation may go on.
func gateMembership(ctx context.Context, opts *ctlOptions, out io.Writer, title string, check bool,
	checks func(ha.Cluster, []ha.StoreVoter) []ha.Check) (*dcs.Store, config.Ctl, bool, error) {
	store, cfg, err := openCtlStore(opts)
	if err != nil {
		return nil, cfg, false, err
	}
	c, voters, err := storeVoters(ctx, store)
	if err == nil {
		var ok bool
		if ok, err = gate(out, opts.output, title, checks(c, voters), check); ok {
			return store, cfg, true, nil
		}
	}
	store.Close()
	return nil, cfg, false, err
}

// storeVoters asks every store member whether it answers.
func storeVoters(ctx context.Context, store *dcs.Store) (ha.Cluster, []ha.StoreVoter, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := store.Load(sctx)
	if err != nil {
		return c, nil, err
	}
	members, err := store.Members(sctx)
	if err != nil {
		return c, nil, err
	}
	var voters []ha.StoreVoter
	for _, m := range members {
		voters = append(voters, ha.StoreVoter{Name: m.Name, Reachable: m.Reachable})
	}
	return c, voters, nil
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
			node, out := args[0], cmd.OutOrStdout()
			u, err := url.Parse(peerURL)
			if peerURL == "" || err != nil || u.Host == "" || u.Port() == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return badInput("--peer-url %q: give the new node's etcd.embed.peer_url, e.g. https://10.0.0.14:2380", peerURL)
			}
			store, cfg, ok, err := gateMembership(cmd.Context(), opts, out, "addition of "+node, check,
				func(c ha.Cluster, v []ha.StoreVoter) []ha.Check { return ha.AddChecks(c, node, v) })
			if !ok {
				return err
			}
			defer store.Close()
			sctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			res, err := store.AddNode(sctx, node, peerURL)
			if err != nil {
				return err
			}
			_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: ha.EventAdd, Target: node, By: operator(),
				Reason: "etcd member at " + peerURL, Result: "ok: etcd member " + res.StoreMemberID})
			return writeOutput(out, opts.output, res, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s added to cluster %s (etcd member %s). In %s's node.yaml:\n  etcd:\n    embed:\n      initial_cluster: %q\n      initial_cluster_state: existing\nthen start its agent.\n",
					node, cfg.Cluster, res.StoreMemberID, node, res.InitialCluster)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&peerURL, "peer-url", "", "the new node's etcd.embed.peer_url")
	cmd.Flags().BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	return cmd
}
