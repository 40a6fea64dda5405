package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
)

func bindLogicalTarget(cmd *cobra.Command, req *repoops.LogicalRequest) {
	cmd.Flags().StringVar(&req.DB, "db", "", "database (required)")
	cmd.Flags().StringVar(&req.Schema, "schema", "", "only this schema (SQL syntax: unquoted names fold to lower case; quote others: '\"Sales\"')")
	cmd.Flags().StringVar(&req.Table, "table", "", "only this table, [SCHEMA.]TABLE in SQL syntax: app.orders, '\"App\".\"My Orders\"'")
}

func newBackupLogicalCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.LogicalRequest{}
	cmd := &cobra.Command{
		Use:   "logical --db NAME [--schema S] [--table T]",
		Short: "Logical backup (pg_dump custom format) of a database, schema or table into the repository",
		Args:  cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			res, err := repoops.LogicalBackup(ctx, s, req)
			if err != nil {
				return err
			}
			return jobResult(res.JobResult(), opts.result(out, res, "logical backup %s of %s (%d tables): %s dump in %s",
				res.ID, res.What, res.Tables, humanBytes(res.DumpSize), res.Duration.Round(time.Millisecond)))
		}),
	}
	bindRepoFlags(cmd, opts)
	bindLogicalTarget(cmd, &req)
	cmd.Flags().StringVar(&req.Label, "label", "", "free text shown in 'pgguard backups' and usable as 'restore logical --backup label:TEXT'")
	return cmd
}

func newRestoreLogicalCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.LogicalRequest{}
	cmd := &cobra.Command{
		Use:   "logical --db NAME [--schema S] [--table T] [--into NEWDB] [--backup ID]",
		Short: "Restore a database, schema or table from a logical backup, into the original database or a new one",
		Args:  cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			res, err := repoops.LogicalRestore(ctx, s, req)
			if err != nil {
				return err
			}
			return jobResult(res.JobResult(), writeOutput(out, opts.output, res, func(w io.Writer) error {
				fmt.Fprintf(w, "restored %s (%d tables) from logical backup %s into database %s in %s\n", res.Restored, res.Tables, res.BackupID, res.Into, res.Duration.Round(time.Millisecond))
				for _, warn := range res.Warnings {
					fmt.Fprintf(w, "warning: %s\n", warn)
				}
				return nil
			}))
		}),
	}
	bindRepoFlags(cmd, opts)
	bindLogicalTarget(cmd, &req)
	cmd.Flags().StringVar(&req.Into, "into", "", "restore into this new database (created; must not exist)")
	cmd.Flags().StringVar(&req.BackupRef, "backup", "", "logical backup, by id or as label:TEXT (default: the newest that holds the target)")
	return cmd
}
