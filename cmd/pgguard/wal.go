package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
)

func newWALPushCommand() *cobra.Command {
	opts := &repoFlags{boundedMemory: true}
	cmd := &cobra.Command{
		Use:   "wal-push %p",
		Short: "archive_command: archive one WAL file, pushing other ready ones ahead in parallel",
		Long: `Use as archive_command = 'pgguard wal-push -c /etc/pgguard/node.yaml %p'.
Pushes the file and up to --channels - 1 other ready files in parallel; later
calls for those return at once. The same content twice succeeds; other content
fails but for an ended timeline's last segment equal up to the timeline's end.`,
		Args: exactArgs(1, "give the WAL file path (%p)"),
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, args []string, out io.Writer) error {
			res, err := repoops.WALPush(ctx, s, args[0])
			if err == nil && res.Kept != "" {
				os.Stderr.WriteString("pgguard: push " + res.Kept + "\n") // PostgreSQL logs archive_command's stderr
			}
			if err != nil || opts.output != "json" {
				return err
			}
			return writeOutput(out, "json", res, nil)
		}),
	}
	bindRepoFlags(cmd, opts)
	return cmd
}

func newWALFetchCommand() *cobra.Command {
	opts, req := &repoFlags{boundedMemory: true}, repoops.WALFetchRequest{}
	cmd := &cobra.Command{
		Use:   "wal-fetch %f %p",
		Short: "restore_command: fetch one archived WAL file, prefetching the following segments",
		Long: `Use as restore_command = 'pgguard wal-fetch -c /etc/pgguard/node.yaml %f %p'.
Exits 1 without a message when the archive does not have the file:
PostgreSQL asks for files that do not exist (a future timeline's history
file, the segment after the end of the archive).`,
		Args: exactArgs(2, "give the WAL file name (%f) and the path to write it to (%p)"),
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, args []string, out io.Writer) error {
			req.Name, req.Dest = args[0], args[1]
			res, err := repoops.WALFetch(ctx, s, req)
			if err == nil && opts.output == "json" {
				err = writeOutput(out, "json", res, nil)
			}
			if err == nil && !res.Found {
				// The one quiet failure: PostgreSQL treats exit 1 as "no
				// such file" and logs nothing worth reading.
				os.Exit(1)
			}
			return err
		}),
	}
	bindRepoFlags(cmd, opts)
	cmd.Flags().IntVar(&req.Prefetch, "prefetch", 4, "segments to fetch ahead into the spool (0 turns prefetch off)")
	return cmd
}
