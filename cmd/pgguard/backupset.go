package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/cliout"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/spf13/cobra"
)

// Backup-set management (issue 18 item 1): pin, unpin, label, delete.

func newBackupsPinCommand(pin bool) *cobra.Command {
	opts := &repoFlags{}
	use, short := "pin ID", "Pin a backup: prune never removes it and delete refuses it until it is unpinned"
	if !pin {
		use, short = "unpin ID", "Unpin a backup: retention applies to it again"
	}
	cmd := &cobra.Command{Use: use, Short: short, Args: exactArgs(1, "give the backup id ('pgguard backups' lists them)"),
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, args []string, out io.Writer) error {
			if pin {
				a, err := repoops.Pin(ctx, s, args[0], operator(), time.Now())
				return printAnnotated(out, opts, a, err)
			}
			a, err := repoops.Unpin(ctx, s, args[0])
			return printAnnotated(out, opts, a, err)
		}),
	}
	bindRepoFlags(cmd, opts)
	return cmd
}

func newBackupsLabelCommand() *cobra.Command {
	opts := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "label ID TEXT",
		Short: "Set a backup's label (free text; \"\" removes it), shown in lists and usable as 'restore --backup label:TEXT'",
		Args:  exactArgs(2, "give the backup id and the label"),
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, args []string, out io.Writer) error {
			a, err := repoops.Label(ctx, s, args[0], args[1])
			return printAnnotated(out, opts, a, err)
		}),
	}
	bindRepoFlags(cmd, opts)
	return cmd
}

func printAnnotated(out io.Writer, opts *repoFlags, a repoops.Annotated, err error) error {
	if err != nil {
		return err
	}
	return opts.result(out, a, "backup %s %s", a.ID, a.Change)
}

func newBackupsDeleteCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.DeleteRequest{}
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete one backup and the blocks no other backup uses; refused while pinned, while the repository is in use, or below the minimum (--keep)",
		Long: `Delete one backup. Refused, changing nothing, when the backup is pinned,
when a backup, copy, restore or prune holds the repository, or when fewer
than --keep backups of its family (physical: full and incremental; logical)
would remain. Every other backup keeps what it needs (each manifest names
all its blocks); archived WAL stays for 'pgguard prune' to judge.`,
		Args: exactArgs(1, "give the backup id ('pgguard backups' lists them)"),
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, args []string, out io.Writer) error {
			req.ID = args[0]
			if !yes {
				req.Confirm = func() bool { return cliout.Confirm(os.Stdin, out, fmt.Sprintf("Delete backup %s? [y/N] ", req.ID)) }
			}
			res, err := repoops.Delete(ctx, s, req)
			switch {
			case errors.Is(err, backup.ErrRefused):
				printChecks(out, opts.output, "delete of backup "+req.ID+" refused", res.Checks)
				return err
			case err != nil:
				return err
			case req.CheckOnly:
				printChecks(out, opts.output, "delete of backup "+req.ID, res.Checks)
				return nil
			}
			return opts.result(out, res, "backup %s deleted; GC removed %d packs, freed %s", req.ID, res.GC.PacksDeleted, humanBytes(res.GC.BytesFreed))
		}),
	}
	bindRepoFlags(cmd, opts)
	cmd.Flags().IntVar(&req.Keep, "keep", 1, "backups of the same family that must remain")
	cmd.Flags().BoolVar(&req.CheckOnly, "check", false, "only list the conditions and whether they pass; change nothing")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}
