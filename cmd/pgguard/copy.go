package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/backup/progress"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/repocopy"
	"github.com/pgguard/pgguard/internal/storage"
)

// toPassphraseEnv names the environment variable holding the destination
// repository's passphrase for `pgguard copy`. Like the source's, it is
// never a flag.
const toPassphraseEnv = "PGGUARD_TO_PASSPHRASE"

type copyOptions struct {
	repoFlags
	toRepo  string
	backups []string
	all     bool
	newest  int
	wal     string
	parents bool
}

func newCopyCommand() *cobra.Command {
	opts := &copyOptions{}
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
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCopy(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	bindRepoFlags(cmd, &opts.repoFlags)
	fl := cmd.Flags()
	fl.StringVar(&opts.toRepo, "to-repo", "", "destination repository: file:///path or s3://bucket/prefix (overrides repository.copy_to.url)")
	fl.StringArrayVar(&opts.backups, "backup", nil, "backup id to copy (repeatable)")
	fl.BoolVar(&opts.all, "all", false, "copy every backup")
	fl.IntVar(&opts.newest, "newest", 0, "copy the newest N backups")
	fl.StringVar(&opts.wal, "wal", "needed", "WAL to copy: needed (from each copied backup to the next backup, or to the end of the archive) or all")
	fl.BoolVar(&opts.parents, "with-parents", false, "also copy the backups an incremental names as parent (not needed to restore it)")
	return cmd
}

// copyReport is the -o json output; stored_size repeats bytes_stored
// under the name the job runner reads, id is the newest backup copied.
type copyReport struct {
	repocopy.Result
	ID         string `json:"id,omitempty"`
	StoredSize int64  `json:"stored_size"`
}

func runCopy(ctx context.Context, opts *copyOptions, out io.Writer) error {
	sel := repocopy.Options{BackupIDs: opts.backups, All: opts.all, Newest: opts.newest,
		WAL: repocopy.WALMode(opts.wal), Parents: opts.parents}
	if err := sel.Validate(); err != nil {
		return usageError{err}
	}
	s, err := resolveRepoSettings(&opts.repoFlags)
	if err != nil {
		return err
	}
	sel.Parallel = s.Channels
	ds, err := resolveCopyDestination(opts, s)
	if err != nil {
		return err
	}
	if a, b := mustLocation(ds.RepoURL), mustLocation(s.RepoURL); a == b {
		return badInput("--to-repo %s is the source repository; give another destination", ds.RepoURL)
	}
	// The destination is checked first: a wrong destination key must fail
	// before the source is even opened, and both before anything is written.
	dst, err := openCopyDestination(ctx, ds)
	if err != nil {
		return err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	src, err := openRepository(ctx, s)
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	// Progress on stderr: a bar on a terminal, JSON lines otherwise (job
	// logs), counting the bytes read from the source.
	// It starts with the first block, so a refused copy prints nothing but
	// its error.
	var (
		rep     progress.Reporter
		started sync.Once
		shown   atomic.Int64
	)
	sel.Progress = func(r repocopy.Result) {
		started.Do(func() {
			rep = progress.ForStderr()
			rep.Start("copy", 0)
		})
		for {
			old := shown.Load()
			if r.BytesRead <= old {
				return
			}
			if shown.CompareAndSwap(old, r.BytesRead) {
				rep.Add(r.BytesRead - old)
				return
			}
		}
	}
	res, err := repocopy.Copy(ctx, src, dst, sel)
	started.Do(func() {}) // no more starts; Progress calls have returned
	if rep != nil {
		rep.Finish()
	}
	if err != nil {
		if len(res.Copied) > 0 || res.BlocksCopied > 0 {
			err = fmt.Errorf("%w (copied so far: %d backups, %d blocks, %s; run the same copy again to resume)",
				err, len(res.Copied), res.BlocksCopied, humanBytes(res.BytesStored))
		}
		var ie *repocopy.InputError
		if errors.As(err, &ie) {
			return usageError{err}
		}
		return err
	}
	report := copyReport{Result: res, StoredSize: res.BytesStored}
	if n := len(res.Copied); n > 0 {
		report.ID = res.Copied[n-1]
	}
	return writeOutput(out, s.Output, report, func(w io.Writer) error {
		return printCopy(w, res)
	})
}

func printCopy(w io.Writer, res repocopy.Result) error {
	took := res.Duration.Round(time.Millisecond)
	if len(res.Backups) == 0 {
		_, err := fmt.Fprintf(w, "nothing to copy: %s (%d WAL files copied)\n", res.Note, res.WALCopied)
		return err
	}
	if res.NothingNew() {
		_, err := fmt.Fprintf(w, "nothing new to copy: %s already has the %d selected backups and their WAL (%d WAL files); stored 0 B, read %s in %s\n",
			res.Destination, len(res.Backups), res.WALSkipped, humanBytes(res.BytesRead), took)
		return err
	}
	for _, id := range res.Copied {
		fmt.Fprintf(w, "copied backup %s\n", id)
	}
	rate := ""
	if secs := res.Duration.Seconds(); secs > 0 {
		rate = fmt.Sprintf(" (%s/s read)", humanBytes(int64(float64(res.BytesRead)/secs)))
	}
	_, err := fmt.Fprintf(w, "copied %d backups (%d already there) from %s to %s in %s%s: %d blocks stored, %d already there (%d without reading); read %s, stored %s; WAL: %d copied, %d already there\n",
		len(res.Copied), len(res.Present), res.Source, res.Destination, took, rate, res.BlocksCopied, res.BlocksSkipped, res.BlocksKnown,
		humanBytes(res.BytesRead), humanBytes(res.BytesStored), res.WALCopied, res.WALSkipped)
	return err
}

// resolveCopyDestination merges --to-repo over repository.copy_to. The
// destination shares the source's channels, retry and rate settings.
func resolveCopyDestination(opts *copyOptions, s repoSettings) (repoSettings, error) {
	d := repoSettings{RepoURL: opts.toRepo, Output: s.Output, Channels: s.Channels, Retry: s.Retry, Rate: s.Rate}
	if s.Config != nil {
		ct := s.Config.Repository.CopyTo
		if d.RepoURL == "" {
			d.RepoURL = ct.URL
		}
		d.KeyFile = ct.KeyFile
		d.S3 = storage.S3Options{Endpoint: ct.S3.Endpoint, Region: ct.S3.Region, AccessKey: ct.S3.AccessKey,
			SecretKey: ct.S3.SecretKey, DisableTLS: ct.S3.Insecure}
	}
	if d.RepoURL == "" {
		return d, badInput("no destination: give --to-repo file:///path or s3://bucket/prefix, or repository.copy_to.url in the config (-c)")
	}
	if _, err := storage.ParseLocation(d.RepoURL); err != nil {
		return d, usageError{fmt.Errorf("--to-repo: %w", err)}
	}
	// A custom endpoint (from the config or AWS_ENDPOINT_URL) is a
	// self-hosted server: address buckets by path, as for the source.
	d.S3 = d.S3.WithEnv(os.Getenv)
	d.S3.PathStyle = d.S3.Endpoint != ""
	return d, nil
}

// openCopyDestination opens the destination without writing anything: it
// must already be a repository, and the key must open it.
func openCopyDestination(ctx context.Context, d repoSettings) (*repo.Repository, error) {
	var key repo.KeySource
	where := "passphrase in " + toPassphraseEnv
	if d.KeyFile != "" {
		k, err := repo.KeyFile(d.KeyFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("repository.copy_to.key_file %s: %w", d.KeyFile, err)}
		}
		key, where = k, "key file "+d.KeyFile
	} else {
		p := os.Getenv(toPassphraseEnv)
		if p == "" {
			return nil, badInput("no key for the destination repository: set %s, or name a key file in the config (repository.copy_to.key_file, with -c)", toPassphraseEnv)
		}
		key = repo.Passphrase(p)
	}
	initHint := fmt.Sprintf("create it first with: PGGUARD_PASSPHRASE=<destination passphrase> pgguard repo init --repo %s", d.RepoURL)
	if loc, _ := storage.ParseLocation(d.RepoURL); loc.Scheme == "file" {
		// Opening a local backend creates its directory; a mistyped path
		// must not leave one behind.
		if _, err := os.Stat(loc.Path); errors.Is(err, os.ErrNotExist) {
			return nil, badInput("destination repository %s does not exist; %s", loc.Path, initHint)
		}
	}
	be, err := openRepoBackend(ctx, d)
	if err != nil {
		return nil, err
	}
	empty := true
	err = be.List(ctx, "keys/", func(storage.FileInfo) error {
		empty = false
		return errStopList
	})
	if err != nil && !errors.Is(err, errStopList) {
		return nil, fmt.Errorf("destination repository %s: %w", be.Location(), err)
	}
	if empty {
		return nil, badInput("destination %s is not a pgguard repository; %s", be.Location(), initHint)
	}
	r, err := repo.Open(ctx, be, key, repo.Runtime{Parallel: d.Channels})
	if errors.Is(err, repo.ErrWrongKey) {
		return nil, badInput("destination repository %s: the %s does not open it (wrong key?); nothing was written", be.Location(), where)
	}
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	return r, nil
}

var errStopList = errors.New("stop listing")

// mustLocation parses a location already checked by the resolvers.
func mustLocation(u string) storage.Location {
	loc, _ := storage.ParseLocation(u)
	return loc
}
