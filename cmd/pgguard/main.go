// Command pgguard is the single binary: the node agent, the operator's
// ctl, the backup and restore commands, and a local demo cluster. This
// package only wires commands to the internal packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/spf13/cobra"
)

// badInput marks an error caused by what the user typed (exit 2).
var badInput = badinput.Errorf

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	err := root.ExecuteContext(ctx)
	os.Exit(exitCode(err))
}

// exitCode maps errors to exit codes in one place: 0 success, 2 bad input
// (usage or configuration), 1 anything else.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if plan, refused := ops.IsRefused(err); refused {
		printChecks(os.Stderr, "table", plan.Op+" refused", plan.Failed())
	}
	fmt.Fprintln(os.Stderr, "pgguard:", err)
	var ce *config.Error
	if badinput.Is(err) || errors.As(err, &ce) {
		return 2
	}
	return 1
}

// restoreWithSubcommands is `pgguard restore` (a data directory) with
// `pgguard restore wal` (a range of WAL) beneath it.
func restoreWithSubcommands() *cobra.Command {
	r := newRestoreCommand()
	r.AddCommand(newRestoreWALCommand(), newRestoreLogicalCommand())
	return r
}

// backupWithLogical is `pgguard backup full|incr` plus `backup logical`.
func backupWithLogical() *cobra.Command {
	b := newBackupCommand()
	b.AddCommand(newBackupLogicalCommand())
	return b
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "pgguard",
		Short:         "High availability and backup & recovery for PostgreSQL",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return badinput.Wrap(err) })
	root.AddCommand(newAgentCommand(), newVIPHelperCommand(), newCtlCommand(), newDemoCommand(), newJobsCommand(), newDrillCommand(),
		newRepoCommand(), backupWithLogical(), newBackupsCommand(), newVerifyCommand(), newPruneCommand(),
		newWALPushCommand(), newWALFetchCommand(), newWALServeCommand(), restoreWithSubcommands(), newCopyCommand(), newCertsCommand())
	return root
}
