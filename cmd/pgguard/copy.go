package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/repocopy"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
)

func newCopyCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.CopyRequest{}
	var walMode string
	cmd := &cobra.Command{
		Use:   "copy --to-repo URL (--backup ID | --all | --newest N)",
		Short: "Copy backups and the WAL they need into another repository, deduplicated (e.g. local to S3)",
		Long: `Copies backups from the repository of --repo (or the config) into the
repository of --to-repo (or repository.copy_to.url), with the WAL they need.
Blocks the destination already has are not stored again, even though the
two repositories have different keys; copying again stores nothing new. An
interrupted copy resumes where it stopped.

The destination must exist (pgguard repo init). Its key comes from
repository.copy_to.key_file in the config, or else from the environment
variable PGGUARD_TO_PASSPHRASE; never from a flag.`,
		Args: cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			// Progress on stderr: a bar on a terminal, JSON lines
			// otherwise (job logs).
			req.Select.WAL, req.Progress = repocopy.WALMode(walMode), progress.ForStderr()
			rep, err := repoops.Copy(ctx, s, req)
			if err != nil {
				return err
			}
			return jobResult(rep.JobResult(), writeOutput(out, opts.output, rep, func(w io.Writer) error { return repoops.WriteCopy(w, rep.Result) }))
		}),
	}
	bindRepoFlags(cmd, opts)
	fl := cmd.Flags()
	fl.StringVar(&req.ToRepo, "to-repo", "", "destination repository: file:///path or s3://bucket/prefix (overrides repository.copy_to.url)")
	fl.StringArrayVar(&req.Select.BackupIDs, "backup", nil, "backup id to copy (repeatable)")
	fl.BoolVar(&req.Select.All, "all", false, "copy every backup")
	fl.IntVar(&req.Select.Newest, "newest", 0, "copy the newest N backups")
	fl.StringVar(&walMode, "wal", "needed", "WAL to copy: needed (from each copied backup to the next backup, or to the end of the archive) or all")
	fl.BoolVar(&req.Select.Parents, "with-parents", false, "also copy the backups an incremental names as parent (not needed to restore it)")
	return cmd
}
