package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/ops"
)

// newCtlRestoreClusterCommand builds `ctl restore-cluster`: the whole
// cluster back to a backup or a point in time, with no manual step on any
// node (RS-5, HA-16).
func newCtlRestoreClusterCommand(opts *ctlOptions) *cobra.Command {
	var req ops.RestoreClusterRequest
	var yes, abort, check bool
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
			return withOps(cmd, opts, func(ctx context.Context, o ops.Operator, out io.Writer) error {
				if abort {
					if err := o.AbortRestoreCluster(ctx); err != nil {
						return err
					}
					fmt.Fprintln(out, "whole-cluster restore request withdrawn")
					return nil
				}
				var p ops.RestoreClusterPlan
				if done, err := checked(out, opts.output, check, func() (ops.Plan, error) {
					var err error
					p, err = o.PlanRestoreCluster(ctx, req)
					return p.Plan, err
				}); done {
					return err
				}
				prompt := fmt.Sprintf("Restore the whole cluster (%s) on %s, then rebuild %s from the same backup? Every write after the target is dropped from the cluster. [y/N] ",
					p.Target, p.Node, strings.Join(p.Others, ", "))
				if err := confirmed(yes, out, "restore-cluster", prompt); err != nil {
					return err
				}
				req.Node = p.Node
				_, err := o.RestoreCluster(ctx, req)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&check, "check", false, "list every condition with pass/fail and change nothing")
	f.StringVar(&req.Target.Time, "time", "", "restore to this time, e.g. '2026-11-23 10:00:00+00' (a zone is required)")
	f.StringVar(&req.Target.LSN, "lsn", "", "restore to this WAL position")
	f.StringVar(&req.Target.XID, "xid", "", "restore to this transaction id")
	f.StringVar(&req.Target.Name, "name", "", "restore to this restore point")
	f.BoolVar(&req.Target.Immediate, "immediate", false, "restore to the end of the backup")
	f.BoolVar(&req.Exclusive, "exclusive", false, "stop just before the target transaction instead of just after it")
	f.StringVar(&req.Backup, "backup", "", "backup to restore (default: the newest that ends before the target)")
	f.StringVar(&req.Node, "node", "", "the node that restores and becomes the primary (default: the current primary)")
	f.BoolVar(&yes, "yes", false, "do not ask for confirmation")
	f.BoolVar(&abort, "abort", false, "withdraw a whole-cluster restore request that is stuck")
	f.DurationVar(&req.Wait, "timeout", time.Hour, "how long to wait for each phase")
	return cmd
}
