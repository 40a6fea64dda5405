package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/drill"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/spf13/cobra"
)

type drillOptions struct {
	repoFlags
	backupID string
	scratch  string
	port     int
	checks   []string
	noAmchk  bool
	wlimit   string
}

func newDrillCommand() *cobra.Command {
	opts := &drillOptions{}
	cmd := &cobra.Command{
		Use:   "drill [--backup ID] [--check 'SQL=EXPECTED']...",
		Short: "Prove a backup restorable: restore it into a scratch instance, start it, check it, remove it",
		Long: `drill restores a backup (the newest by default) into a scratch directory,
starts it on a free loopback port, and checks it: it opens, pg_amcheck finds
no corruption, and every --check returns what it expects. The scratch
instance is removed whatever the outcome. Exit 1 when the drill fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDrill(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	f := cmd.Flags()
	f.StringVar(&opts.backupID, "backup", "", "backup id (default: the newest)")
	f.StringVar(&opts.scratch, "scratch", "", "directory for the scratch instance (default: beside the data directory, or the system temp dir)")
	f.IntVar(&opts.port, "port", 0, "port of the scratch instance (default: a free loopback port)")
	f.StringArrayVar(&opts.checks, "check", nil, "SQL=EXPECTED: the query's first value as text must equal EXPECTED (repeatable)")
	f.BoolVar(&opts.noAmchk, "skip-amcheck", false, "do not run pg_amcheck")
	f.StringVar(&opts.wlimit, "write-limit", "", "write limit of the scratch restore, e.g. 50MiB or 'unlimited,08:00-20:00=10MiB'")
	return cmd
}

func runDrill(ctx context.Context, opts *drillOptions, out io.Writer) error {
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return err
	}
	var checks []drill.Check
	for _, c := range opts.checks {
		dc, err := drill.ParseCheck(c)
		if err != nil {
			return usageError{err}
		}
		checks = append(checks, dc)
	}
	runAs, user := "", "postgres"
	if s.Config != nil {
		runAs, user = s.Config.RunAs, s.Config.Postgres.Superuser.Username
	}
	acct, err := osuser.Resolve(runAs)
	if err != nil {
		return usageError{err}
	}
	scratch := opts.scratch
	if scratch == "" {
		scratch = filepath.Join(os.TempDir(), "pgguard-drill")
		if s.DataDir != "" {
			scratch = filepath.Join(filepath.Dir(filepath.Clean(s.DataDir)), "drill")
		}
	}
	restoreCmd, err := defaultRestoreCommand(opts.configPath, s.RepoURL)
	if err != nil {
		return err
	}
	var writeLimit func(context.Context, int) error
	if opts.wlimit != "" {
		rs, err := parseRateSchedule(opts.wlimit)
		if err != nil {
			return badInput("--write-limit: %v", err)
		}
		writeLimit = storage.NewLimiter(rs, storage.Clock{}).Wait
	}
	var res drill.Result
	err = withRepository(ctx, &opts.repoFlags, func(s repoSettings, r *repo.Repository) error {
		var err error
		res, err = drill.Run(ctx, drill.Options{
			Repo: r, BackupID: opts.backupID, ScratchParent: scratch, Port: opts.port,
			BinDir: firstNonEmpty(s.BinDir, config.DetectBinDir()), Programs: s.Programs, Database: s.Database, Account: acct, User: user,
			RestoreCommand: restoreCmd, Channels: s.Channels, Checks: checks, SkipAmcheck: opts.noAmchk,
			WriteLimit: writeLimit,
		})
		return err
	})
	if err != nil {
		return err
	}
	werr := writeOutput(out, s.Output, res, func(w io.Writer) error {
		verdict := "PASSED"
		if !res.Passed {
			verdict = "FAILED: " + res.Reason
		}
		fmt.Fprintf(w, "drill of backup %s %s (restore %.1fs, open %.1fs, checks %.1fs, total %.1fs)\n",
			res.BackupID, verdict, res.RestoreSeconds, res.OpenSeconds, res.CheckSeconds, res.TotalSeconds)
		for _, c := range res.Checks {
			mark := "pass"
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "  [%s] %s: %s\n", mark, c.Name, c.Detail)
		}
		return nil
	})
	if werr != nil {
		return werr
	}
	if !res.Passed {
		return fmt.Errorf("drill failed: %s", res.Reason)
	}
	return nil
}
