package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pgguard/pgguard/internal/logrestore"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/restore"
	"github.com/spf13/cobra"
)

type logRestoreOptions struct {
	repoFlags
	from, to, dir string
}

func newRestoreWALCommand() *cobra.Command {
	opts := &logRestoreOptions{}
	cmd := &cobra.Command{
		Use:   "wal --from T1 --to T2 --target-dir DIR",
		Short: "Fetch the archived WAL of a time range (with timeline history files) into a directory, recovering nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogRestore(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	cmd.Flags().StringVar(&opts.from, "from", "", "start of the range (e.g. '2026-11-23 10:00:00+00' or RFC 3339)")
	cmd.Flags().StringVar(&opts.to, "to", "", "end of the range")
	cmd.Flags().StringVar(&opts.dir, "target-dir", "", "directory to write the WAL files into")
	return cmd
}

func runLogRestore(ctx context.Context, opts *logRestoreOptions, out io.Writer) error {
	if opts.from == "" || opts.to == "" || opts.dir == "" {
		return badInput("restore wal needs --from, --to and --target-dir")
	}
	from, err := restore.ParseTime(opts.from)
	if err != nil {
		return badInput("--from: %v", err)
	}
	to, err := restore.ParseTime(opts.to)
	if err != nil {
		return badInput("--to: %v", err)
	}
	if !to.After(from) {
		return badInput("--to %s is not after --from %s", opts.to, opts.from)
	}
	return withRepository(ctx, &opts.repoFlags, func(s repoSettings, r *repo.Repository) error {
		sel, err := logrestore.Run(ctx, r, from, to, opts.dir)
		if err != nil {
			return err
		}
		return writeOutput(out, s.Output, sel, func(w io.Writer) error {
			fmt.Fprintf(w, "%d segments and %d history files written to %s\n", len(sel.Segments), len(sel.History), opts.dir)
			for _, n := range append(append([]string{}, sel.History...), sel.Segments...) {
				fmt.Fprintln(w, "  "+n)
			}
			if sel.Note != "" {
				fmt.Fprintln(w, "note:", sel.Note)
			}
			return nil
		})
	})
}
