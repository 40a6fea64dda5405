package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
)

func newDrillCommand() *cobra.Command {
	opts, req := &repoFlags{boundedMemory: true}, repoops.DrillRequest{}
	cmd := &cobra.Command{
		Use:   "drill [--backup ID] [--check 'SQL=EXPECTED']...",
		Short: "Prove a backup restorable: restore it into a scratch instance, start it, check it, remove it",
		Long: `drill restores a backup (the newest by default) into a scratch directory,
starts it on a free loopback port, and checks it: it opens, pg_amcheck finds
no corruption, and every --check returns what it expects. The scratch
instance is removed whatever the outcome. Exit 1 when the drill fails.`,
		Args: cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			res, err := repoops.Drill(ctx, s, req)
			if err != nil {
				return err
			}
			if err := writeOutput(out, opts.output, res, func(w io.Writer) error {
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
			}); err != nil {
				return err
			}
			if !res.Passed {
				err = fmt.Errorf("drill failed: %s", res.Reason)
			}
			return jobResult(repoops.DrillJobResult(res), err)
		}),
	}
	bindRepoFlags(cmd, opts)
	f := cmd.Flags()
	f.StringVar(&req.BackupID, "backup", "", "backup id (default: the newest)")
	f.StringVar(&req.Scratch, "scratch", "", "directory for the scratch instance (default: beside the data directory, or the system temp dir)")
	f.IntVar(&req.Port, "port", 0, "port of the scratch instance (default: a free loopback port)")
	f.StringArrayVar(&req.Checks, "check", nil, "SQL=EXPECTED: the query's first value as text must equal EXPECTED (repeatable)")
	f.BoolVar(&req.SkipAmcheck, "skip-amcheck", false, "do not run pg_amcheck")
	f.StringVar(&req.WriteLimit, "write-limit", "", "write limit of the scratch restore, e.g. 50MiB or 'unlimited,08:00-20:00=10MiB'")
	return cmd
}
