package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/spf13/cobra"
)

// passphraseEnv names the environment variable holding the repository
// passphrase. There is deliberately no flag: a flag shows in ps.
const passphraseEnv = "PGGUARD_PASSPHRASE"

// repoFlags are the flags every backup and restore command shares. Flags
// override the config file (-c).
type repoFlags struct {
	configPath string
	repoURL    string
	pg         string
	pgdata     string
	output     string
	channels   int
	reconnect  time.Duration
	rate       string
}

// bindRepoFlags registers the shared flags on cmd.
func bindRepoFlags(cmd *cobra.Command, f *repoFlags) {
	fl := cmd.Flags()
	fl.StringVarP(&f.configPath, "config", "c", "", "node configuration (node.yaml) to take repository and postgresql settings from")
	fl.StringVar(&f.repoURL, "repo", "", "repository location: file:///path or s3://bucket/prefix (overrides repository.url)")
	fl.StringVar(&f.pg, "pg", "", "PostgreSQL connection string, libpq keyword or URI form (overrides the postgresql section)")
	fl.StringVar(&f.pgdata, "pgdata", "", "PostgreSQL data directory (overrides postgresql.data_dir)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.IntVar(&f.channels, "channels", 4, "parallel workers, 1 to 255")
	fl.StringVar(&f.rate, "rate-limit", "", "repository transfer limit, e.g. 10MiB, or by time of day: 'unlimited,08:00-20:00=1MiB' (BK-10)")
	fl.DurationVar(&f.reconnect, "reconnect-timeout", storage.DefaultRetryPolicy().ReconnectTimeout,
		"how long to wait for an unreachable repository before failing (1m to 60m)")
}

// repoSettings are the shared flags merged over the config file.
type repoSettings struct {
	RepoURL string
	S3      storage.S3Options
	KeyFile string
	ConnStr string // "" when neither --pg nor a config gives one
	DataDir string
	BinDir  string
	// Programs and Database come from node.yaml (forks' renamed programs,
	// the database tools connect to); empty without -c.
	Programs map[string]string
	Database string
	Port     int
	Output   string
	Channels int
	Retry    storage.RetryPolicy
	Rate     *storage.RateSchedule // nil: unlimited
	Config   *config.Config        // nil without -c
}

// resolveRepoSettings validates the shared flags and merges them over the
// config file. Every problem is bad input (exit code 2).
func resolveRepoSettings(f *repoFlags) (repoSettings, error) {
	s := repoSettings{RepoURL: f.repoURL, ConnStr: f.pg, DataDir: f.pgdata, Output: f.output, Channels: f.channels}
	if f.output != "table" && f.output != "json" {
		return s, badInput("-o %q: use table or json", f.output)
	}
	if f.channels < 1 || f.channels > 255 {
		return s, badInput("--channels %d: use 1 to 255", f.channels)
	}
	if connHasPassword(f.pg) {
		return s, badInput("--pg holds a password, which anyone on this machine can read in the process list: put it in a password file (PGPASSFILE), PGPASSWORD, or the config's postgresql.superuser.password")
	}
	s.Retry = storage.DefaultRetryPolicy()
	s.Retry.ReconnectTimeout = f.reconnect
	if f.rate != "" {
		rs, err := parseRateSchedule(f.rate)
		if err != nil {
			return s, badInput("--rate-limit: %v", err)
		}
		s.Rate = &rs
	}
	if err := s.Retry.Validate(); err != nil {
		return s, badInput("--reconnect-timeout: %v", err)
	}
	if f.configPath != "" {
		cfg, err := config.Load(f.configPath)
		if err != nil {
			return s, usageError{err}
		}
		s.Config = &cfg
		rc := cfg.Repository
		if s.RepoURL == "" {
			s.RepoURL = rc.URL
		}
		s.KeyFile = rc.KeyFile
		s.S3 = storage.S3Options{Endpoint: rc.S3.Endpoint, Region: rc.S3.Region, AccessKey: rc.S3.AccessKey,
			SecretKey: rc.S3.SecretKey, DisableTLS: rc.S3.Insecure, PathStyle: rc.S3.Endpoint != ""}
		if s.DataDir == "" {
			s.DataDir = cfg.Postgres.DataDir
		}
		s.BinDir, s.Port = cfg.Postgres.BinDir, cfg.Postgres.Port
		s.Programs, s.Database = cfg.Postgres.Programs, cfg.Postgres.Database
		if s.ConnStr == "" {
			s.ConnStr = configConnString(cfg)
		}
	}
	if s.RepoURL == "" {
		return s, badInput("no repository: give --repo file:///path or s3://bucket/prefix, or repository.url in the config (-c)")
	}
	if _, err := storage.ParseLocation(s.RepoURL); err != nil {
		return s, usageError{err}
	}
	return s, nil
}

// configConnString is the superuser connection a node's config describes.
func configConnString(cfg config.Config) string {
	host := cfg.Postgres.ConnectAddress
	if host == "" || host == "*" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	db := cfg.Postgres.Database
	if db == "" {
		db = "postgres"
	}
	u := url.URL{Scheme: "postgres", Host: host + ":" + strconv.Itoa(cfg.Postgres.Port), Path: "/" + db}
	su := cfg.Postgres.Superuser
	if su.Password != "" {
		u.User = url.UserPassword(su.Username, su.Password)
	} else {
		u.User = url.User(su.Username)
	}
	return u.String()
}

// requireConn and requireDataDir fail with what to pass when a command
// needs a setting that neither flags nor config gave.
func (s repoSettings) requireConn() error {
	if s.ConnStr == "" {
		return badInput("no PostgreSQL connection: give --pg 'host=/var/run/postgresql port=5432 user=postgres' or a config (-c)")
	}
	return nil
}

func (s repoSettings) requireDataDir() error {
	if s.DataDir == "" {
		return badInput("no data directory: give --pgdata DIR or postgresql.data_dir in the config (-c)")
	}
	return nil
}

// connHasPassword reports whether a libpq connection string (keyword or
// URI form) carries a password itself.
func connHasPassword(conn string) bool {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return strings.Contains(conn, "@") // unparsable: be safe if it might hold one
		}
		_, set := u.User.Password()
		return set || u.Query().Has("password")
	}
	return passwordKeyword.MatchString(conn)
}

var passwordKeyword = regexp.MustCompile(`(^|\s)password\s*=`)

// minPassphrase is the shortest passphrase repo init accepts.
const minPassphrase = 12

// repoKeySource returns the key from the key file named in the config, or
// else from PGGUARD_PASSPHRASE.
func repoKeySource(s repoSettings) (repo.KeySource, error) {
	if s.KeyFile != "" {
		k, err := repo.KeyFile(s.KeyFile)
		if err != nil {
			return k, usageError{fmt.Errorf("repository.key_file %s: %w", s.KeyFile, err)}
		}
		return k, nil
	}
	p := os.Getenv(passphraseEnv)
	if p == "" {
		return repo.KeySource{}, badInput("no repository key: set %s, or name a key file in the config (repository.key_file, with -c)", passphraseEnv)
	}
	return repo.Passphrase(p), nil
}

// openRepoBackend opens the storage a repository lives on, with retries
// that wait out a network cut for up to the reconnect timeout.
func openRepoBackend(ctx context.Context, s repoSettings) (storage.Backend, error) {
	be, err := storage.Open(ctx, s.RepoURL, s.S3)
	if err != nil {
		return nil, usageError{err}
	}
	if s.Rate != nil {
		// One schedule, one bucket per direction: uploads during a backup,
		// downloads during a restore.
		be = storage.WithRateLimit(be, storage.NewLimiter(*s.Rate, storage.Clock{}), storage.NewLimiter(*s.Rate, storage.Clock{}))
	}
	policy := s.Retry
	if policy.OnRetry == nil {
		policy.OnRetry = retryNotice(os.Stderr, be.Location())
	}
	return storage.WithRetry(be, policy), nil
}

// parseRateSchedule reads "RATE" or "RATE,HH:MM-HH:MM=RATE,...": the first
// item is the default (a window may come first: the default is then
// unlimited).
func parseRateSchedule(v string) (storage.RateSchedule, error) {
	var rs storage.RateSchedule
	for i, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if strings.Contains(part, "=") {
			w, err := storage.ParseRateWindow(part)
			if err != nil {
				return rs, err
			}
			rs.Windows = append(rs.Windows, w)
			continue
		}
		if i > 0 {
			return rs, fmt.Errorf("%q: only the first item may be a plain rate; windows are HH:MM-HH:MM=RATE", part)
		}
		r, err := storage.ParseByteRate(part)
		if err != nil {
			return rs, err
		}
		rs.Default = r
	}
	return rs, nil
}

// openRepository opens (unlocks) the repository the settings name.
func openRepository(ctx context.Context, s repoSettings) (*repo.Repository, error) {
	return openRepositoryWith(ctx, s, repo.Runtime{Parallel: s.Channels})
}

// openWALRepository opens the repository for the WAL archive commands,
// without loading the block index they never use.
func openWALRepository(ctx context.Context, s repoSettings) (*repo.Repository, error) {
	return openRepositoryWith(ctx, s, repo.Runtime{Parallel: s.Channels, WALOnly: true})
}

func openRepositoryWith(ctx context.Context, s repoSettings, rt repo.Runtime) (*repo.Repository, error) {
	key, err := repoKeySource(s)
	if err != nil {
		return nil, err
	}
	be, err := openRepoBackend(ctx, s)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, be, key, rt)
	if errors.Is(err, repo.ErrWrongKey) {
		return nil, badInput("repository %s: the %s does not open it (wrong key?); nothing was written", be.Location(), keyWhere(s))
	}
	if err != nil {
		return nil, err
	}
	if hp := r.HeadProblem(); hp != "" {
		fmt.Fprintf(os.Stderr, "warning: repository %s changed outside pgguard: %s ('pgguard verify --all' checks what is left)\n", be.Location(), hp)
	}
	return r, nil
}

// withRepository resolves the flags, opens the repository, runs fn and
// closes the repository, whatever fn returns.
func withRepository(ctx context.Context, f *repoFlags, fn func(s repoSettings, r *repo.Repository) error) error {
	s, err := resolveRepoSettings(f)
	if err != nil {
		return err
	}
	r, err := openRepository(ctx, s)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	return fn(s, r)
}

func keyWhere(s repoSettings) string {
	if s.KeyFile != "" {
		return "key file " + s.KeyFile
	}
	return "passphrase in " + passphraseEnv
}

// writeOutput prints v as indented JSON for -o json, or calls table.
func writeOutput(out io.Writer, format string, v any, table func(io.Writer) error) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return table(out)
}

// humanBytes prints n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// waldump is the pg_waldump node.yaml names when it renames it ("": the
// one next to the running server).
func (s repoSettings) waldump() string {
	if s.Programs["pg_waldump"] == "" {
		return ""
	}
	return pgbin.Tools{BinDir: s.BinDir, Programs: s.Programs}.Path("pg_waldump")
}

// retryNotice says on w, at most every 5 s, that the repository does not
// answer and pgguard keeps trying (a job's log shows it; the operation
// fails only after the reconnect timeout).
func retryNotice(w io.Writer, location string) func(op, name string, err error, wait time.Duration) {
	var mu sync.Mutex
	var last time.Time
	return func(op, name string, err error, wait time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 5*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintf(w, "repository %s unreachable (%s %s: %v), retrying in %s\n", location, op, name, err, wait.Round(100*time.Millisecond))
	}
}
