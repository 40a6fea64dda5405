package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/logical"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/spf13/cobra"
)

type logicalOptions struct {
	repoFlags
	db, schema, table string
	into              string
	backupID          string
	label             string
}

func bindLogicalTarget(cmd *cobra.Command, o *logicalOptions) {
	cmd.Flags().StringVar(&o.db, "db", "", "database (required)")
	cmd.Flags().StringVar(&o.schema, "schema", "", "only this schema (SQL syntax: unquoted names fold to lower case; quote others: '\"Sales\"')")
	cmd.Flags().StringVar(&o.table, "table", "", "only this table, [SCHEMA.]TABLE in SQL syntax: app.orders, '\"App\".\"My Orders\"'")
}

func newBackupLogicalCommand() *cobra.Command {
	o := &logicalOptions{}
	cmd := &cobra.Command{
		Use:   "logical --db NAME [--schema S] [--table T]",
		Short: "Logical backup (pg_dump custom format) of a database, schema or table into the repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogical(cmd.Context(), o, true, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &o.repoFlags)
	bindLogicalTarget(cmd, o)
	cmd.Flags().StringVar(&o.label, "label", "", "free text shown in 'pgguard backups' and usable as 'restore logical --backup label:TEXT'")
	return cmd
}

func newRestoreLogicalCommand() *cobra.Command {
	o := &logicalOptions{}
	cmd := &cobra.Command{
		Use:   "logical --db NAME [--schema S] [--table T] [--into NEWDB] [--backup ID]",
		Short: "Restore a database, schema or table from a logical backup, into the original database or a new one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLogical(cmd.Context(), o, false, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &o.repoFlags)
	bindLogicalTarget(cmd, o)
	cmd.Flags().StringVar(&o.into, "into", "", "restore into this new database (created; must not exist)")
	cmd.Flags().StringVar(&o.backupID, "backup", "", "logical backup, by id or as label:TEXT (default: the newest that holds the target)")
	return cmd
}

func runLogical(ctx context.Context, o *logicalOptions, backup bool, out io.Writer) error {
	if o.db == "" {
		return badInput("--db is required")
	}
	req, err := logical.ParseRequest(o.db, o.schema, o.table)
	if err != nil {
		return badInput("%s", err)
	}
	if err := repo.CheckLabel(o.label); err != nil {
		return badInput("--label: %v", err)
	}
	return withRepository(ctx, &o.repoFlags, func(s repoSettings, r *repo.Repository) error {
		if err := s.requireConn(); err != nil {
			return err
		}
		return logicalRun(ctx, o, req, backup, s, r, out)
	})
}

func logicalRun(ctx context.Context, o *logicalOptions, req logical.Request, backup bool, s repoSettings, r *repo.Repository, out io.Writer) error {
	id, err := resolveBackupRef(ctx, r, o.backupID)
	if err != nil {
		return err
	}
	o.backupID = id
	opts := logical.Options{Repo: r, ConnInfo: s.ConnStr, BinDir: firstNonEmpty(s.BinDir, config.DetectBinDir()),
		Programs: s.Programs, Database: s.Database,
		Request: req, BackupID: o.backupID, Into: o.into}
	started := time.Now()
	if backup {
		lk, err := r.Lock(ctx, false)
		if err != nil {
			return err
		}
		defer lk.Unlock(context.WithoutCancel(ctx))
		m, err := logical.Backup(ctx, opts)
		if err != nil {
			return err
		}
		if o.label != "" {
			if err := r.SetAnnotation(ctx, m.ID, repo.Annotation{Label: o.label}); err != nil {
				return fmt.Errorf("logical backup %s made, but its label was not saved (set it with 'pgguard backups label %s TEXT'): %w", m.ID, m.ID, err)
			}
		}
		var size int64
		for _, f := range m.Files {
			size += f.Size
		}
		return writeOutput(out, s.Output, map[string]any{"id": m.ID, "kind": m.Kind, "label": m.Label, "dump_size": size, "seconds": time.Since(started).Seconds()},
			func(w io.Writer) error {
				held := 0
				if m.Logical != nil {
					held = len(m.Logical.Holds)
				}
				_, err := fmt.Fprintf(w, "logical backup %s of %s (%d tables): %s dump in %s\n", m.ID, strings.TrimPrefix(m.Label, "logical "), held, humanBytes(size), time.Since(started).Round(time.Millisecond))
				return err
			})
	}
	res, err := logical.Restore(ctx, opts)
	if err != nil {
		return err
	}
	return writeOutput(out, s.Output, map[string]any{"backup_id": res.BackupID, "into": res.Into, "restored": res.Restored, "tables": res.Tables,
		"warnings": res.Warnings, "seconds": time.Since(started).Seconds()},
		func(w io.Writer) error {
			if _, err := fmt.Fprintf(w, "restored %s (%d tables) from logical backup %s into database %s in %s\n", res.Restored, res.Tables, res.BackupID, res.Into, time.Since(started).Round(time.Millisecond)); err != nil {
				return err
			}
			for _, warn := range res.Warnings {
				if _, err := fmt.Fprintf(w, "warning: %s\n", warn); err != nil {
					return err
				}
			}
			return nil
		})
}
