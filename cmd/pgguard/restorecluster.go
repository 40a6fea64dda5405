package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/restore"
)

// newCtlRestoreClusterCommand builds `ctl restore-cluster`: the whole
// cluster back to a backup or a point in time, with no manual step on any
// node (RS-5, HA-16).
func newCtlRestoreClusterCommand(opts *ctlOptions) *cobra.Command {
	var (
		yes, abort, exclusive, check bool
		node, backupID               string
		target                       restore.Target
		timeout                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "restore-cluster (--time T | --lsn L | --xid X | --name N | --immediate) [--backup ID] [--node NODE] [--yes]",
		Short: "Restore the whole cluster to a backup or a point in time: the primary first, then every standby rebuilt to follow it",
		Long: `Rolls the whole cluster back. NODE (default: the current primary) restores
the backup that reaches the target from its repository into a staging
directory, swaps it in (the old data directory is kept aside), recovers to
the target and opens as the primary on a new timeline. Meanwhile every other
node stops and holds no election; afterwards each one is rebuilt from the
same backup and follows the restored primary through the archive and then
streaming. Writes made after the target are gone from the cluster (they
stay in the old data directories kept aside and in the archive).

If the restore fails (no backup reaches the target, recovery does not get
there), the old data directory is put back, the request is withdrawn and
the cluster comes back as it was; the history says why. --abort withdraws a
request that is stuck (for example because NODE died); a restore that has
already reached its target and claimed its timeline finishes anyway.`,
		Example: `  pgguard ctl restore-cluster --time '2026-11-23 10:00:00+00'
  pgguard ctl restore-cluster --immediate --backup 20261123T095500Z-full --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if abort {
				return withCtlStore(cmd.Context(), opts, func(sctx context.Context, store *dcs.Store, _ config.Ctl) error {
					if err := store.CancelClusterRestore(sctx); err != nil {
						return err
					}
					_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: "cluster-restore-abort", By: operator(), Result: "ok"})
					fmt.Fprintln(out, "whole-cluster restore request withdrawn")
					return nil
				})
			}
			target.Inclusive = !exclusive
			// The target is checked here, before anything is requested.
			probe := restore.Options{TargetDir: "/check", Channels: 1, RestoreCommand: "check", Target: target}
			if err := probe.Validate(); err != nil {
				return badInput("%v", err)
			}
			restoreArgs := targetArgs(target, exclusive)
			if backupID != "" {
				restoreArgs = append(restoreArgs, "--backup", backupID)
			}
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
			checks, resolved := ha.RestoreClusterChecks(c, node)
			if ok, err := gate(out, opts.output, "whole-cluster restore", checks, check); !ok {
				return err
			}
			node = resolved
			var others []string
			for _, n := range peerNames(c) {
				if n != node {
					others = append(others, n)
				}
			}
			prompt := fmt.Sprintf("Restore the whole cluster (%s) on %s, then rebuild %s from the same backup? Every write after the target is dropped from the cluster. [y/N] ",
				strings.Join(restoreArgs, " "), node, strings.Join(others, ", "))
			if !yes && !confirm(os.Stdin, out, prompt) {
				return badInput("restore-cluster not confirmed (use --yes in scripts)")
			}
			began := time.Now()
			req := ha.ClusterRestore{Node: node, Args: restoreArgs, By: operator(), At: began.UTC()}
			if err := store.RequestClusterRestore(sctx, req); err != nil {
				return err
			}
			_ = store.AppendHistory(sctx, dcs.Event{Node: "ctl", Action: "cluster-restore-request", Target: node, By: operator(),
				Reason: strings.Join(restoreArgs, " "), Result: "ok"})
			fmt.Fprintf(out, "whole-cluster restore requested on %s\n", node)
			if err := waitFor(cmd.Context(), store, timeout, out, "restore of the primary "+node, func(c ha.Cluster) bool { return c.Restore == nil }); err != nil {
				return err
			}
			// The agent records the outcome just after it ends the
			// request; agents' clocks may differ from ours by a little.
			result := ""
			for deadline := time.Now().Add(30 * time.Second); result == "" && time.Now().Before(deadline); {
				hctx, hcancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				events, err := store.History(hctx, began.Add(-time.Minute))
				hcancel()
				if err == nil {
					for _, e := range events {
						if e.Node == node && e.Action == "cluster-restore" && e.Result != "started" && !e.Time.Before(req.At.Add(-time.Minute)) {
							result = e.Result + ": " + e.Reason
						}
					}
				}
				if result == "" {
					time.Sleep(500 * time.Millisecond) // polling interval
				}
			}
			if !strings.HasPrefix(result, "ok") {
				return fmt.Errorf("whole-cluster restore did not happen: %s", firstNonEmpty(result, "no result recorded (see 'pgguard ctl history')"))
			}
			fmt.Fprintln(out, result)
			return waitRebuilt(cmd.Context(), store, timeout, out, "rebuild of "+strings.Join(others, ", "), node, others...)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	f.StringVar(&target.Time, "time", "", "restore to this time, e.g. '2026-11-23 10:00:00+00' (a zone is required)")
	f.StringVar(&target.LSN, "lsn", "", "restore to this WAL position")
	f.StringVar(&target.XID, "xid", "", "restore to this transaction id")
	f.StringVar(&target.Name, "name", "", "restore to this restore point")
	f.BoolVar(&target.Immediate, "immediate", false, "restore to the end of the backup")
	f.BoolVar(&exclusive, "exclusive", false, "stop just before the target transaction instead of just after it")
	f.StringVar(&backupID, "backup", "", "backup to restore (default: the newest that ends before the target)")
	f.StringVar(&node, "node", "", "the node that restores and becomes the primary (default: the current primary)")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&abort, "abort", false, "withdraw a whole-cluster restore request that is stuck")
	f.DurationVar(&timeout, "timeout", time.Hour, "how long to wait for each phase")
	return cmd
}

// targetArgs are the restore command's flags for target.
func targetArgs(t restore.Target, exclusive bool) []string {
	var a []string
	switch {
	case t.Time != "":
		a = []string{"--time", t.Time}
	case t.LSN != "":
		a = []string{"--lsn", t.LSN}
	case t.XID != "":
		a = []string{"--xid", t.XID}
	case t.Name != "":
		a = []string{"--name", t.Name}
	case t.Immediate:
		a = []string{"--immediate"}
	}
	if exclusive {
		a = append(a, "--exclusive")
	}
	return a
}
