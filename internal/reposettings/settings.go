// Package reposettings owns how pgguard reaches a backup repository from a
// node's configuration (node.yaml) and a command line's overrides: the
// merged and validated Settings, where the key comes from (a key file or
// an environment variable, never a flag), opening the storage with retries
// and rate limits, opening or creating the repository, the destination of
// a copy, and the restore_command that fetches WAL with the same settings.
//
// It never prints and never exits: warnings and retry notices go to
// Settings.Notices. It never puts a secret into an error, a notice or a
// command line it builds. Errors a person must fix are badinput errors.
package reposettings

import (
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/pgbin"
	"github.com/pgguard/pgguard/internal/storage"
)

// Overrides are the settings a command line gives over the config file.
// Their zero values mean "from the config", except Channels and
// ReconnectTimeout, which DefaultOverrides fills.
type Overrides struct {
	RepoURL    string // file:///path or s3://bucket/prefix
	ConnString string // libpq keyword or URI form, without a password
	DataDir    string
	Channels   int           // parallel workers, 1 to 255
	Reconnect  time.Duration // how long to wait for an unreachable repository
	RateLimit  string        // repository transfer limit, see storage.ParseRateSchedule
}

// DefaultOverrides are the command line's defaults.
func DefaultOverrides() Overrides {
	return Overrides{Channels: 4, Reconnect: storage.DefaultRetryPolicy().ReconnectTimeout}
}

// Validate checks the overrides by themselves, before any config is read.
func (o Overrides) Validate() error {
	_, err := o.check()
	return err
}

// check validates the overrides and returns the parsed rate limit (nil:
// unlimited).
func (o Overrides) check() (*storage.RateSchedule, error) {
	if err := checkChannels(o.Channels); err != nil {
		return nil, err
	}
	if connHasPassword(o.ConnString) {
		return nil, badinput.Errorf("--pg holds a password, which anyone on this machine can read in the process list: put it in a password file (PGPASSFILE), PGPASSWORD, or the config's postgresql.superuser.password")
	}
	var rate *storage.RateSchedule
	if o.RateLimit != "" {
		rs, err := storage.ParseRateSchedule(o.RateLimit)
		if err != nil {
			return nil, badinput.Errorf("--rate-limit: %v", err)
		}
		rate = &rs
	}
	return rate, checkRetry(retryPolicy(o.Reconnect))
}

// Settings are the overrides merged over a node's config: everything the
// backup and restore commands need to reach the repository and the
// database.
type Settings struct {
	// ConfigPath is the node.yaml the settings were read from ("" without
	// one): the default restore_command names it. Config is its content.
	ConfigPath string
	Config     *config.Config

	RepoURL string
	S3      storage.S3Options
	KeyFile string // "": the passphrase is in PassphraseEnv
	ConnStr string // "" when neither the overrides nor a config give one
	DataDir string
	BinDir  string
	// Programs and Database come from node.yaml (forks' renamed programs,
	// the database tools connect to); empty without a config.
	Programs map[string]string
	Database string
	Port     int
	Channels int
	Retry    storage.RetryPolicy
	Rate     *storage.RateSchedule // nil: unlimited

	// Getenv reads the passphrases and AWS_* variables (nil: os.Getenv).
	Getenv func(string) string
	// Notices receives warnings and "repository unreachable, retrying"
	// lines (nil: they are discarded).
	Notices io.Writer
}

// Load reads the config at configPath ("" for none) and merges the
// overrides over it. Every error is a badinput error: the overrides are
// checked before the config is read, so that a typo costs nothing.
func Load(configPath string, o Overrides) (Settings, error) {
	if err := o.Validate(); err != nil {
		return Settings{}, err
	}
	var cfg *config.Config
	if configPath != "" {
		c, err := config.Load(configPath)
		if err != nil {
			return Settings{}, badinput.Wrap(err)
		}
		cfg = &c
	}
	s, err := New(cfg, o)
	s.ConfigPath = configPath
	return s, err
}

// New merges the overrides over cfg (nil: no config) and validates the
// result.
func New(cfg *config.Config, o Overrides) (Settings, error) {
	rate, err := o.check()
	if err != nil {
		return Settings{}, err
	}
	s := Settings{RepoURL: o.RepoURL, ConnStr: o.ConnString, DataDir: o.DataDir, Channels: o.Channels,
		Retry: retryPolicy(o.Reconnect), Rate: rate, Config: cfg}
	if cfg != nil {
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
			s.ConnStr = connString(*cfg)
		}
	}
	return s, s.Validate()
}

// Validate checks settings however they were made.
func (s Settings) Validate() error {
	if err := checkChannels(s.Channels); err != nil {
		return err
	}
	if err := checkRetry(s.Retry); err != nil {
		return err
	}
	if s.RepoURL == "" {
		return badinput.Errorf("no repository: give --repo file:///path or s3://bucket/prefix, or repository.url in the config (-c)")
	}
	_, err := storage.ParseLocation(s.RepoURL)
	return badinput.Wrap(err)
}

func checkChannels(n int) error {
	if n < 1 || n > 255 {
		return badinput.Errorf("--channels %d: use 1 to 255", n)
	}
	return nil
}

func retryPolicy(reconnect time.Duration) storage.RetryPolicy {
	p := storage.DefaultRetryPolicy()
	p.ReconnectTimeout = reconnect
	return p
}

func checkRetry(p storage.RetryPolicy) error {
	if err := p.Validate(); err != nil {
		return badinput.Errorf("--reconnect-timeout: %v", err)
	}
	return nil
}

// RequireConn fails with what to pass when a command needs a database
// connection that neither the overrides nor the config gave.
func (s Settings) RequireConn() error {
	if s.ConnStr == "" {
		return badinput.Errorf("no PostgreSQL connection: give --pg 'host=/var/run/postgresql port=5432 user=postgres' or a config (-c)")
	}
	return nil
}

// Waldump is the pg_waldump node.yaml names when it renames it ("": the
// one next to the running server).
func (s Settings) Waldump() string {
	if s.Programs["pg_waldump"] == "" {
		return ""
	}
	return pgbin.Tools{BinDir: s.BinDir, Programs: s.Programs}.Path("pg_waldump")
}

// RunAs is the account node.yaml names to own files and run servers ("":
// the default).
func (s Settings) RunAs() string {
	if s.Config == nil {
		return ""
	}
	return s.Config.RunAs
}

// connString is the superuser connection a node's config describes.
func connString(cfg config.Config) string {
	host := cfg.Postgres.ConnectAddress
	if host == "" || host == "*" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	db := cfg.Postgres.Database
	if db == "" {
		db = "postgres"
	}
	u := url.URL{Scheme: "postgres", Host: host + ":" + strconv.Itoa(cfg.Postgres.Port), Path: "/" + db}
	q := url.Values{}
	if t := cfg.PostgresTLS(); t.SSLMode != "" {
		q.Set("sslmode", t.SSLMode)
	}
	if t := cfg.PostgresTLS(); t.SSLRootCert != "" {
		q.Set("sslrootcert", t.SSLRootCert)
	}
	u.RawQuery = q.Encode()
	su := cfg.Postgres.Superuser
	if su.Password != "" {
		u.User = url.UserPassword(su.Username, su.Password)
	} else {
		u.User = url.User(su.Username)
	}
	return u.String()
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
