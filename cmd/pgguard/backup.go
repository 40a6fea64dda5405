package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
)

// ---- repo init ----

type repoInitOptions struct {
	repoFlags
	cipher      string
	compression string
	level       int
	packSizeMiB int
}

func newRepoCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Manage a backup repository"}
	opts := &repoInitOptions{}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create an encrypted repository at an empty location (key from PGGUARD_PASSPHRASE or repository.key_file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRepoInit(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(initCmd, &opts.repoFlags)
	initCmd.Flags().StringVar(&opts.cipher, "cipher", string(repo.XChaCha20Poly1305), "encryption: xchacha20-poly1305 (192-bit nonces) or aes-256-gcm (96-bit random nonces: keep a repository under about 4 billion sealed objects)")
	initCmd.Flags().StringVar(&opts.compression, "compression", "zstd", "block compression: zstd, lz4 or none")
	initCmd.Flags().IntVar(&opts.level, "compression-level", 3, "zstd level, 1 to 22")
	initCmd.Flags().IntVar(&opts.packSizeMiB, "pack-size", 32, "target pack file size in MiB, 1 to 1024")
	cmd.AddCommand(initCmd)
	return cmd
}

func runRepoInit(ctx context.Context, opts *repoInitOptions, _ []string, out io.Writer) error {
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return err
	}
	ro := repo.DefaultOptions()
	ro.Cipher = repo.Cipher(opts.cipher)
	ro.Compression = repo.Compression(opts.compression)
	ro.CompressionLevel = opts.level
	ro.PackSize = int64(opts.packSizeMiB) << 20
	ro.Runtime = repo.Runtime{Parallel: s.Channels}
	if err := ro.Validate(); err != nil {
		return usageError{err}
	}
	key, err := repoKeySource(s)
	if err != nil {
		return err
	}
	if s.KeyFile == "" && len(os.Getenv(passphraseEnv)) < minPassphrase {
		return badInput("%s is shorter than %d characters: choose a longer passphrase, or a key file of random bytes (repository.key_file)", passphraseEnv, minPassphrase)
	}
	be, err := openRepoBackend(ctx, s)
	if err != nil {
		return err
	}
	r, err := repo.Init(ctx, be, key, ro)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	cfg := r.Config()
	return writeOutput(out, s.Output, cfg, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "initialized repository %s at %s (%s, %s level %d, %s blocks)\n",
			cfg.ID, be.Location(), cfg.Cipher, cfg.Compression, cfg.CompressionLevel, humanBytes(int64(cfg.BlockSize)))
		return err
	})
}

// ---- backup full|incr ----

type backupOptions struct {
	repoFlags
	fromStandby          bool
	spread               bool
	ignoreChecksumErrors bool
	readLimit            string
	label                string
}

func newBackupCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "Take a physical backup of a running PostgreSQL into the repository"}
	for _, kind := range []repo.Kind{repo.KindFull, repo.KindIncr} {
		opts := &backupOptions{}
		short := "Full backup: read every file"
		if kind == repo.KindIncr {
			short = "Incremental backup: read only what changed since the newest backup (a full if there is none); the manifest is still complete"
		}
		sub := &cobra.Command{
			Use:   string(kind),
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return runBackup(cmd.Context(), opts, kind, cmd.OutOrStdout())
			},
		}
		bindRepoFlags(sub, &opts.repoFlags)
		sub.Flags().BoolVar(&opts.fromStandby, "from-standby", false, "the server is a standby (refused if it is a primary)")
		sub.Flags().BoolVar(&opts.spread, "spread-checkpoint", false, "wait for a spread checkpoint instead of asking for an immediate one")
		sub.Flags().StringVar(&opts.readLimit, "read-limit", "", "data directory read limit, e.g. 20MiB, or by time of day: 'unlimited,08:00-20:00=5MiB' (apart from --rate-limit, the repository transfer)")
		sub.Flags().BoolVar(&opts.ignoreChecksumErrors, "ignore-checksum-errors", false, "exit 0 even if pages failed checksum validation (they are reported either way)")
		sub.Flags().StringVar(&opts.label, "label", "", "free text shown in 'pgguard backups' and usable as 'restore --backup label:TEXT'")
		cmd.AddCommand(sub)
	}
	return cmd
}

func runBackup(ctx context.Context, opts *backupOptions, kind repo.Kind, out io.Writer) error {
	if err := repo.CheckLabel(opts.label); err != nil {
		return badInput("--label: %v", err)
	}
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return err
	}
	if err := s.requireConn(); err != nil {
		return err
	}
	var readLimit func(context.Context, int) error
	if opts.readLimit != "" {
		rs, err := parseRateSchedule(opts.readLimit)
		if err != nil {
			return badInput("--read-limit: %v", err)
		}
		readLimit = storage.NewLimiter(rs, storage.Clock{}).Wait
	}
	r, err := openRepository(ctx, s)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	// The repository's reconnect timeout also bounds waiting for a lost
	// database (BK-9).
	res, attempts, err := backup.RunReconnecting(ctx, backup.Options{
		Repo: r, ConnString: s.ConnStr, Kind: kind, DataDir: s.DataDir, Channels: s.Channels,
		FromStandby: opts.fromStandby, SpreadCheckpoint: opts.spread,
		IgnoreChecksumErrors: opts.ignoreChecksumErrors, Progress: progress.ForStderr(), ReadLimit: readLimit,
		Waldump: s.waldump(),
	}, s.Retry.ReconnectTimeout)
	if res.Manifest == nil {
		return err
	}
	if opts.label != "" {
		if lerr := r.SetAnnotation(ctx, res.Manifest.ID, repo.Annotation{Label: opts.label}); lerr != nil {
			err = errors.Join(err, fmt.Errorf("backup %s made, but its label was not saved (set it with 'pgguard backups label %s TEXT'): %w", res.Manifest.ID, res.Manifest.ID, lerr))
		}
	}
	sum := backup.Summarize(res.Manifest.Header)
	report := struct {
		backup.Summary
		Note              string   `json:"note,omitempty"`
		Seconds           float64  `json:"seconds"`
		FilesRead         int64    `json:"files_read"`
		FilesFromPrevious int64    `json:"files_from_previous"`
		PagesChecked      int64    `json:"pages_checked"`
		WALMapUsed        bool     `json:"wal_map_used"`
		WALMapFallback    string   `json:"wal_map_fallback,omitempty"`
		PacksReused       int      `json:"packs_reused"`
		BadPages          []string `json:"bad_pages_list,omitempty"`
		Attempts          int      `json:"attempts"`
	}{Summary: sum, Note: res.Note, Attempts: attempts, Seconds: res.Duration.Seconds(), FilesRead: res.Source.FilesRead,
		FilesFromPrevious: res.Source.FilesFromPrevious, PagesChecked: res.Source.PagesChecked,
		WALMapUsed: res.Source.WALMapUsed, WALMapFallback: res.Source.WALMapFallback, PacksReused: res.Rebuilt.PacksAdded}
	for _, p := range res.Source.BadPages {
		report.BadPages = append(report.BadPages, p.String())
	}
	if n := r.MissingPacks(); n > 0 {
		fmt.Fprintf(os.Stderr, "warning: the repository's index names %d packs the storage does not hold (deleted outside pgguard); their blocks were stored again; 'pgguard verify --all' names the backups that used them\n", n)
	}
	werr := writeOutput(out, s.Output, report, func(w io.Writer) error {
		if res.Note != "" {
			fmt.Fprintln(w, "note:", res.Note)
		}
		_, err := fmt.Fprintf(w, "backup %s (%s) done in %s: %s in the data directory, %s read, %s newly stored; LSN %s to %s, timeline %d\n",
			sum.ID, sum.Kind, res.Duration.Round(time.Millisecond), humanBytes(sum.Size), humanBytes(sum.BytesRead),
			humanBytes(sum.StoredSize), sum.StartLSN, sum.StopLSN, sum.Timeline)
		return err
	})
	return errors.Join(err, werr)
}

// ---- backups ----

func newBackupsCommand() *cobra.Command {
	opts := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "backups",
		Short: "List the backups in the repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackups(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, opts)
	cmd.AddCommand(newBackupsPinCommand(true), newBackupsPinCommand(false), newBackupsLabelCommand(), newBackupsDeleteCommand())
	return cmd
}

func runBackups(ctx context.Context, opts *repoFlags, _ []string, out io.Writer) error {
	s, err := resolveRepoSettings(opts)
	if err != nil {
		return err
	}
	r, err := openRepository(ctx, s)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return err
	}
	ann, err := r.Annotations(ctx)
	if err != nil {
		return err
	}
	type listed struct {
		backup.Summary
		repo.Annotation
	}
	list := make([]listed, 0, len(ids))
	for _, id := range ids {
		m, err := r.LoadManifest(ctx, id)
		if err != nil {
			return err
		}
		list = append(list, listed{backup.Summarize(m.Header), ann[id]})
	}
	return writeOutput(out, s.Output, list, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tSTART\tSTOP\tSTART LSN\tSTOP LSN\tTL\tSIZE\tSTORED\tPIN\tLABEL")
		for _, b := range list {
			pin := ""
			if b.Pinned {
				pin = "pinned"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", b.ID, b.Kind,
				b.StartTime.UTC().Format(time.RFC3339), b.StopTime.UTC().Format(time.RFC3339),
				b.StartLSN, b.StopLSN, b.Timeline, humanBytes(b.Size), humanBytes(b.StoredSize), pin, b.Label)
		}
		return tw.Flush()
	})
}

// ---- verify ----

type verifyOptions struct {
	repoFlags
	backupID string
	all      bool
}

func newVerifyCommand() *cobra.Command {
	opts := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Read every block of a backup (or of every backup and pack) and check every checksum",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	cmd.Flags().StringVar(&opts.backupID, "backup", "", "backup id to verify")
	cmd.Flags().BoolVar(&opts.all, "all", false, "verify every backup and every pack")
	return cmd
}

type verifyProblem struct {
	Backup string `json:"backup,omitempty"`
	File   string `json:"file,omitempty"`
	Block  string `json:"block,omitempty"`
	Pack   string `json:"pack,omitempty"`
	Error  string `json:"error"`
}

func runVerify(ctx context.Context, opts *verifyOptions, _ []string, out io.Writer) error {
	if (opts.backupID == "") == !opts.all {
		return badInput("give either --backup ID or --all")
	}
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return err
	}
	r, err := openRepository(ctx, s)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	problems := []verifyProblem{}
	if hp := r.HeadProblem(); hp != "" && opts.all {
		problems = append(problems, verifyProblem{Error: "repository head: " + hp})
	}
	err = r.Verify(ctx, opts.backupID, func(p repo.Problem) {
		vp := verifyProblem{Backup: p.BackupID, File: p.Path, Pack: p.Pack, Error: p.String()}
		if p.Block != (repo.BlockID{}) {
			vp.Block = p.Block.String()
		}
		problems = append(problems, vp)
	})
	if err != nil {
		return err
	}
	what := "backup " + opts.backupID
	if opts.all {
		what = "every backup and pack"
	}
	if werr := writeOutput(out, s.Output, problems, func(w io.Writer) error {
		for _, p := range problems {
			fmt.Fprintln(w, p.Error)
		}
		if len(problems) == 0 {
			fmt.Fprintf(w, "verified %s: no problem found\n", what)
		}
		return nil
	}); werr != nil {
		return werr
	}
	if len(problems) > 0 {
		first := problems[0]
		return fmt.Errorf("verify %s: %d problems, first: backup %s, file %s: %s", what, len(problems), first.Backup, first.File, first.Error)
	}
	return nil
}

// ---- prune ----

type pruneOptions struct {
	repoFlags
	keep     int
	keepDays int
	wal      string
}

func newPruneCommand() *cobra.Command {
	opts := &pruneOptions{}
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete backups beyond the retention, the WAL no kept backup needs, and unreferenced blocks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrune(cmd.Context(), opts, args, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	cmd.Flags().IntVar(&opts.keep, "keep", 0, "keep the newest N backups (required, at least 1)")
	cmd.Flags().IntVar(&opts.keepDays, "keep-days", 0, "also keep every backup younger than D days")
	cmd.Flags().StringVar(&opts.wal, "wal", "covered", "WAL retention: keep-all, covered (delete WAL older than the oldest kept backup) or days:N (covered, but keep the last N days)")
	return cmd
}

func runPrune(ctx context.Context, opts *pruneOptions, _ []string, out io.Writer) error {
	mode, days, err := backup.ParseWALRule(opts.wal)
	if err != nil {
		return usageError{err}
	}
	if opts.keepDays < 0 {
		return badInput("--keep-days %d: must not be negative", opts.keepDays)
	}
	pol := backup.RetentionPolicy{Keep: opts.keep, KeepFor: time.Duration(opts.keepDays) * 24 * time.Hour, WAL: mode, WALDays: days}
	if err := pol.Validate(); err != nil {
		return usageError{err}
	}
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return err
	}
	r, err := openRepository(ctx, s)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	res, err := backup.Prune(ctx, r, pol, time.Now())
	if err != nil {
		return err
	}
	return writeOutput(out, s.Output, res, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "kept %d backups, deleted %d backups and %d WAL files; GC removed %d packs, freed %s\n",
			len(res.Plan.Keep), len(res.Plan.DeleteBackups), len(res.Plan.DeleteWAL), res.GC.PacksDeleted, humanBytes(res.GC.BytesFreed))
		return err
	})
}
