package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/repo"
)

// Backup-set management (issue 18 item 1): pin, unpin, label, delete.

func newBackupsPinCommand(pin bool) *cobra.Command {
	opts := &repoFlags{}
	use, short := "pin ID", "Pin a backup: prune never removes it and delete refuses it until it is unpinned"
	if !pin {
		use, short = "unpin ID", "Unpin a backup: retention applies to it again"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1, "give the backup id ('pgguard backups' lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return annotate(cmd.Context(), opts, args[0], cmd.OutOrStdout(), func(a *repo.Annotation) string {
				if pin {
					a.Pinned, a.PinnedBy, a.PinnedAt = true, operator(), time.Now().UTC()
					return "pinned"
				}
				a.Pinned, a.PinnedBy, a.PinnedAt = false, "", time.Time{}
				return "unpinned"
			})
		},
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := repo.CheckLabel(args[1]); err != nil {
				return badInput("%v", err)
			}
			return annotate(cmd.Context(), opts, args[0], cmd.OutOrStdout(), func(a *repo.Annotation) string {
				a.Label = args[1]
				return fmt.Sprintf("labelled %q", args[1])
			})
		},
	}
	bindRepoFlags(cmd, opts)
	return cmd
}

// annotate changes one backup's annotation under a shared repository lock
// (a delete or prune, which take it exclusively, cannot run meanwhile).
func annotate(ctx context.Context, opts *repoFlags, id string, out io.Writer, change func(*repo.Annotation) string) error {
	return withRepository(ctx, opts, func(s repoSettings, r *repo.Repository) error {
		lock, err := r.Lock(ctx, false)
		if err != nil {
			return err
		}
		defer lock.Unlock(context.WithoutCancel(ctx))
		a, err := r.Annotation(ctx, id)
		if err != nil {
			return err
		}
		what := change(&a)
		if err := r.SetAnnotation(ctx, id, a); err != nil {
			return err
		}
		return writeOutput(out, s.Output, struct {
			ID string `json:"id"`
			repo.Annotation
		}{id, a}, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "backup %s %s\n", id, what)
			return err
		})
	})
}

type deleteOptions struct {
	repoFlags
	keep  int
	check bool
	yes   bool
}

func newBackupsDeleteCommand() *cobra.Command {
	opts := &deleteOptions{}
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete one backup and the blocks no other backup uses; refused while pinned, while the repository is in use, or below the minimum (--keep)",
		Long: `Delete one backup. Refused, changing nothing, when the backup is pinned,
when a backup, copy, restore or prune holds the repository, or when fewer
than --keep backups of its family (physical: full and incremental; logical)
would remain. Every other backup keeps what it needs (each manifest names
all its blocks); archived WAL stays for 'pgguard prune' to judge.`,
		Args: exactArgs(1, "give the backup id ('pgguard backups' lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackupsDelete(cmd.Context(), opts, args[0], cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	cmd.Flags().IntVar(&opts.keep, "keep", 1, "backups of the same family that must remain")
	cmd.Flags().BoolVar(&opts.check, "check", false, "only list the conditions and whether they pass; change nothing")
	cmd.Flags().BoolVar(&opts.yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func runBackupsDelete(ctx context.Context, opts *deleteOptions, id string, out io.Writer) error {
	if opts.keep < 0 {
		return badInput("--keep %d: must not be negative", opts.keep)
	}
	return withRepository(ctx, &opts.repoFlags, func(s repoSettings, r *repo.Repository) error {
		// checkOnly first, then (confirmed) for real: the checks run
		// again under the lock that the deletion holds.
		del := func(checkOnly bool) (backup.DeleteResult, error) {
			res, err := backup.Delete(ctx, r, id, opts.keep, checkOnly)
			if errors.Is(err, backup.ErrRefused) {
				printChecks(out, s.Output, "delete of backup "+id+" refused", res.Checks)
				return res, fmt.Errorf("delete of backup %s refused: %s", id, failedDetail(res.Checks))
			}
			return res, err
		}
		res, err := del(true)
		if err != nil {
			return err
		}
		if opts.check {
			printChecks(out, s.Output, "delete of backup "+id, res.Checks)
			return nil
		}
		if !opts.yes && !confirm(os.Stdin, out, fmt.Sprintf("Delete backup %s? [y/N] ", id)) {
			return badInput("delete not confirmed (use --yes in scripts)")
		}
		if res, err = del(false); err != nil {
			return err
		}
		return writeOutput(out, s.Output, res, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "backup %s deleted; GC removed %d packs, freed %s\n", id, res.GC.PacksDeleted, humanBytes(res.GC.BytesFreed))
			return err
		})
	})
}

func failedDetail(checks []ha.Check) string {
	var parts []string
	for _, c := range checks {
		if !c.OK {
			parts = append(parts, c.Detail)
		}
	}
	return strings.Join(parts, "; ")
}

// resolveBackupRef turns "label:TEXT" into the id of the one backup with
// that label; anything else is taken as an id.
func resolveBackupRef(ctx context.Context, r *repo.Repository, ref string) (string, error) {
	label, ok := strings.CutPrefix(ref, "label:")
	if !ok {
		return ref, nil
	}
	id, err := backup.FindByLabel(ctx, r, label)
	if err != nil {
		return "", badInput("--backup %s: %v", ref, err)
	}
	return id, nil
}
