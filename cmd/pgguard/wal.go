package main

import (
	"context"
	"io"
	"os"
	"time"

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
	noServe := false
	cmd := &cobra.Command{
		Use:   "wal-fetch %f %p",
		Short: "restore_command: fetch one archived WAL file, prefetching the following segments",
		Long: `Use as restore_command = 'pgguard wal-fetch -c /etc/pgguard/node.yaml %f %p'.
Exits 1 without a message when the archive does not have the file:
PostgreSQL asks for files that do not exist (a future timeline's history
file, the segment after the end of the archive).

With -c, in a data directory the configuration does not manage (a restored
copy, a drill's), it also starts a wal-serve there, which keeps the
repository open and answers the later calls that come through pgguard-wal
(restore writes restore_command with pgguard-wal when it is installed
beside pgguard); it ends after a minute without one. --no-serve or
PGGUARD_NO_WAL_SERVE=1 in the server's environment turn that off.`,
		Args: exactArgs(2, "give the WAL file name (%f) and the path to write it to (%p)"),
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, args []string, out io.Writer) error {
			req.Name, req.Dest = args[0], args[1]
			res, err := repoops.WALFetch(ctx, s, req)
			if err == nil && !noServe {
				// Later calls in a restored copy's directory go to it
				// (through pgguard-wal), without this process's start
				// and repository open.
				if exe, xerr := os.Executable(); xerr == nil {
					repoops.StartWALServer(s, exe)
				}
			}
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
	cmd.Flags().BoolVar(&noServe, "no-serve", false, "do not start a wal-serve for the data directory")
	return cmd
}

func newWALServeCommand() *cobra.Command {
	opts := &repoFlags{boundedMemory: true}
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "wal-serve",
		Short: "answer restore_command for a restored data directory from a repository kept open (wal-fetch starts it)",
		Long: `Serves pgguard-wal's restore_command calls for --pgdata over its local
socket, as the agent does for the directory it manages, from the repository
of -c kept open, until no call came for --idle or the directory is gone.
pgguard wal-fetch -c starts it by itself in a directory no agent manages;
when one already answers there it exits at once.`,
		Args: exactArgs(0, "wal-serve takes no arguments"),
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, _ io.Writer) error {
			if opts.DataDir == "" {
				return badInput("wal-serve: give the data directory to serve with --pgdata")
			}
			return repoops.ServeWAL(ctx, s, opts.DataDir, idle)
		}),
	}
	bindRepoFlags(cmd, opts)
	cmd.Flags().DurationVar(&idle, "idle", repoops.WALServeIdle, "end after this long without a call")
	return cmd
}
