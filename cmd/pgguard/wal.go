package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup/wal"
	"github.com/pgguard/pgguard/internal/config"
)

func newWALPushCommand() *cobra.Command {
	opts := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "wal-push %p",
		Short: "archive_command: archive one WAL file, pushing other ready ones ahead in parallel",
		Long: `Use as archive_command = 'pgguard wal-push -c /etc/pgguard/node.yaml %p'.
Pushes the file and up to --channels - 1 other files PostgreSQL marked ready,
in parallel; PostgreSQL's later calls for those return at once. Pushing the
same content twice succeeds; a different file under an archived name fails.`,
		Args: exactArgs(1, "give the WAL file path (%p)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWALPush(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, opts)
	return cmd
}

func runWALPush(ctx context.Context, opts *repoFlags, args []string, out io.Writer) error {
	s, err := resolveRepoSettings(opts)
	if err != nil {
		return err
	}
	path := args[0]
	if _, err := os.Stat(path); err != nil {
		return badInput("wal-push %s: %v (archive_command passes %%p, relative to the data directory)", path, err)
	}
	r, err := openWALRepository(ctx, s)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	res, err := wal.Push(ctx, r, path, wal.PushOptions{Parallel: s.Channels})
	if err != nil {
		return err
	}
	if s.Output == "json" {
		return writeOutput(out, "json", res, nil)
	}
	return nil
}

type walFetchOptions struct {
	repoFlags
	prefetch int
}

func newWALFetchCommand() *cobra.Command {
	opts := &walFetchOptions{}
	cmd := &cobra.Command{
		Use:   "wal-fetch %f %p",
		Short: "restore_command: fetch one archived WAL file, prefetching the following segments",
		Long: `Use as restore_command = 'pgguard wal-fetch -c /etc/pgguard/node.yaml %f %p'.
Exits 1 without a message when the archive does not have the file:
PostgreSQL asks for files that do not exist (a future timeline's history
file, the segment after the end of the archive).`,
		Args: exactArgs(2, "give the WAL file name (%f) and the path to write it to (%p)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			found, err := runWALFetch(cmd.Context(), opts, args, cmd.OutOrStdout())
			if err == nil && !found {
				// The one quiet failure: PostgreSQL treats exit 1 as "no
				// such file" and logs nothing worth reading.
				os.Exit(1)
			}
			return err
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	cmd.Flags().IntVar(&opts.prefetch, "prefetch", 4, "segments to fetch ahead into the spool (0 turns prefetch off)")
	return cmd
}

func runWALFetch(ctx context.Context, opts *walFetchOptions, args []string, out io.Writer) (bool, error) {
	if opts.prefetch < 0 || opts.prefetch > 255 {
		return false, badInput("--prefetch %d: use 0 to 255", opts.prefetch)
	}
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return false, err
	}
	name, dest := args[0], args[1]
	if name != filepath.Base(name) || name == "" {
		return false, badInput("wal-fetch: %q is not a WAL file name (restore_command passes %%f)", name)
	}
	r, err := openWALRepository(ctx, s)
	if err != nil {
		return false, err
	}
	defer r.Close(context.WithoutCancel(ctx))
	fo := wal.FetchOptions{Prefetch: opts.prefetch, NoPrefetch: opts.prefetch == 0}
	if s.Config != nil && s.Config.Disk.Critical != "" {
		// The look-ahead stops before the volume reaches disk.critical
		// (a percentage needs the volume's size).
		var st syscall.Statfs_t
		if syscall.Statfs(filepath.Dir(dest), &st) == nil {
			if min, err := config.Threshold(s.Config.Disk.Critical, st.Blocks*uint64(st.Bsize)); err == nil {
				fo.MinFree = min
			}
		}
	}
	res, err := wal.Fetch(ctx, r, name, dest, fo)
	if err != nil {
		return false, err
	}
	if s.Output == "json" {
		if err := writeOutput(out, "json", res, nil); err != nil {
			return res.Found, err
		}
	}
	return res.Found, nil
}

// exactArgs is cobra.ExactArgs with an error that says what to pass and
// maps to exit code 2.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return badInput("%s (got %d arguments)", what, len(args))
		}
		return nil
	}
}
