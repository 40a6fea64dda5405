package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
)

func newRepoCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.InitRequest{}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create an encrypted repository at an empty location (key from PGGUARD_PASSPHRASE or repository.key_file)",
		Args:  cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			res, err := repoops.Init(ctx, s, req)
			if err != nil {
				return err
			}
			c := res.Config
			return opts.result(out, c, "initialized repository %s at %s (%s, %s level %d, %s blocks)",
				c.ID, res.Location, c.Cipher, c.Compression, c.CompressionLevel, humanBytes(int64(c.BlockSize)))
		}),
	}
	bindRepoFlags(initCmd, opts)
	f := initCmd.Flags()
	f.StringVar(&req.Cipher, "cipher", string(repo.XChaCha20Poly1305), "encryption: xchacha20-poly1305 (192-bit nonces) or aes-256-gcm (96-bit random nonces: keep a repository under about 4 billion sealed objects)")
	f.StringVar(&req.Compression, "compression", "zstd", "block compression: zstd, lz4 or none")
	f.IntVar(&req.CompressionLevel, "compression-level", 3, "zstd level, 1 to 22")
	f.IntVar(&req.PackSizeMiB, "pack-size", 32, "target pack file size in MiB, 1 to 1024")
	cmd := &cobra.Command{Use: "repo", Short: "Manage a backup repository"}
	cmd.AddCommand(initCmd)
	return cmd
}

func newBackupCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "Take a physical backup of a running PostgreSQL into the repository"}
	for _, kind := range []repo.Kind{repo.KindFull, repo.KindIncr} {
		opts, req := &repoFlags{boundedMemory: true}, repoops.BackupRequest{Kind: kind}
		short := "Full backup: read every file"
		if kind == repo.KindIncr {
			short = "Incremental backup: read only what changed since the newest backup (a full if there is none); the manifest is still complete"
		}
		sub := &cobra.Command{Use: string(kind), Short: short, Args: cobra.NoArgs,
			RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
				req.Progress = progress.ForStderr()
				rep, err := repoops.Backup(ctx, s, req)
				if rep == nil {
					return err
				}
				werr := writeOutput(out, opts.output, rep, func(w io.Writer) error {
					if rep.Note != "" {
						fmt.Fprintln(w, "note:", rep.Note)
					}
					_, err := fmt.Fprintf(w, "backup %s (%s) done in %s: %s in the data directory, %s read, %s newly stored; LSN %s to %s, timeline %d\n",
						rep.ID, rep.Kind, rep.Duration.Round(time.Millisecond), humanBytes(rep.Size), humanBytes(rep.BytesRead),
						humanBytes(rep.StoredSize), rep.StartLSN, rep.StopLSN, rep.Timeline)
					return err
				})
				return jobResult(rep.JobResult(), errors.Join(err, werr))
			}),
		}
		bindRepoFlags(sub, opts)
		f := sub.Flags()
		f.BoolVar(&req.FromStandby, "from-standby", false, "the server is a standby (refused if it is a primary)")
		f.BoolVar(&req.SpreadCheckpoint, "spread-checkpoint", false, "wait for a spread checkpoint instead of asking for an immediate one")
		f.StringVar(&req.ReadLimit, "read-limit", "", "data directory read limit, e.g. 20MiB, or by time of day: 'unlimited,08:00-20:00=5MiB' (apart from --rate-limit, the repository transfer)")
		f.BoolVar(&req.IgnoreChecksumErrors, "ignore-checksum-errors", false, "exit 0 even if pages failed checksum validation (they are reported either way)")
		f.StringVar(&req.Label, "label", "", "free text shown in 'pgguard backups' and usable as 'restore --backup label:TEXT'")
		cmd.AddCommand(sub)
	}
	return cmd
}

func newBackupsCommand() *cobra.Command {
	opts := &repoFlags{}
	cmd := &cobra.Command{Use: "backups", Short: "List the backups in the repository", Args: cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			list, err := repoops.List(ctx, s)
			if err != nil {
				return err
			}
			return writeOutput(out, opts.output, list, func(w io.Writer) error { return repoops.WriteBackups(w, list) })
		}),
	}
	bindRepoFlags(cmd, opts)
	cmd.AddCommand(newBackupsPinCommand(true), newBackupsPinCommand(false), newBackupsLabelCommand(), newBackupsDeleteCommand())
	return cmd
}

func newVerifyCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.VerifyRequest{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Read every block of a backup (or of every backup and pack) and check every checksum",
		Args:  cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			res, err := repoops.Verify(ctx, s, req)
			if err != nil {
				return err
			}
			if err := writeOutput(out, opts.output, res.Problems, func(w io.Writer) error {
				for _, p := range res.Problems {
					fmt.Fprintln(w, p.Error)
				}
				if len(res.Problems) == 0 {
					fmt.Fprintf(w, "verified %s: no problem found\n", res.What)
				}
				return nil
			}); err != nil {
				return err
			}
			return jobResult(res.JobResult(), res.Err())
		}),
	}
	bindRepoFlags(cmd, opts)
	cmd.Flags().StringVar(&req.BackupID, "backup", "", "backup id to verify")
	cmd.Flags().BoolVar(&req.All, "all", false, "verify every backup and every pack")
	return cmd
}

func newPruneCommand() *cobra.Command {
	opts, req := &repoFlags{}, repoops.PruneRequest{}
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete backups beyond the retention, the WAL no kept backup needs, and unreferenced blocks",
		Args:  cobra.NoArgs,
		RunE: opts.run(func(ctx context.Context, s reposettings.Settings, _ []string, out io.Writer) error {
			req.Now = time.Now()
			res, err := repoops.Prune(ctx, s, req)
			if err != nil {
				return err
			}
			return jobResult(repoops.PruneJobResult(res), opts.result(out, res, "kept %d backups, deleted %d backups and %d WAL files; GC removed %d packs, freed %s",
				len(res.Plan.Keep), len(res.Plan.DeleteBackups), len(res.Plan.DeleteWAL), res.GC.PacksDeleted, humanBytes(res.GC.BytesFreed)))
		}),
	}
	bindRepoFlags(cmd, opts)
	cmd.Flags().IntVar(&req.Keep, "keep", 0, "keep the newest N backups (required, at least 1)")
	cmd.Flags().IntVar(&req.KeepDays, "keep-days", 0, "also keep every backup younger than D days")
	cmd.Flags().StringVar(&req.WAL, "wal", "covered", "WAL retention: keep-all, covered (delete WAL older than the oldest kept backup) or days:N (covered, but keep the last N days)")
	return cmd
}
