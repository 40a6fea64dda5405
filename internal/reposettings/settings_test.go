package reposettings_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/reposettings"
)

func overrides(repoURL string) reposettings.Overrides {
	o := reposettings.DefaultOverrides()
	o.RepoURL = repoURL
	return o
}

func TestOverridesRefusals(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(*reposettings.Overrides)
		mention string
	}{
		{"no worker is too few", func(o *reposettings.Overrides) { o.Channels = 0 }, "--channels 0: use 1 to 255"},
		{"more workers than a byte counts are too many", func(o *reposettings.Overrides) { o.Channels = 256 }, "--channels 256"},
		{"a password in a keyword connection string would show in ps", func(o *reposettings.Overrides) { o.ConnString = "host=db user=postgres password=hunter2" }, "--pg holds a password"},
		{"a password in a URI would show in ps", func(o *reposettings.Overrides) { o.ConnString = "postgres://postgres:hunter2@db/postgres" }, "--pg holds a password"},
		{"a password as a URI parameter would show in ps", func(o *reposettings.Overrides) { o.ConnString = "postgresql://db/postgres?password=hunter2" }, "--pg holds a password"},
		{"an unparsable URI with an @ might hold one", func(o *reposettings.Overrides) { o.ConnString = "postgres://u:hunter2@db:port/x%zz" }, "--pg holds a password"},
		{"a rate limit that is no rate", func(o *reposettings.Overrides) { o.RateLimit = "fast" }, "--rate-limit:"},
		{"a reconnect timeout below a minute", func(o *reposettings.Overrides) { o.Reconnect = time.Second }, "--reconnect-timeout:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := overrides("file:///srv/repo")
			tc.edit(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.mention) || !badinput.Is(err) {
				t.Fatalf("Validate() = %v; want bad input naming %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the refusal repeats the password: %v", err)
			}
			if _, err := reposettings.New(nil, o); err == nil {
				t.Fatal("New accepted what Validate refuses")
			}
		})
	}
	o := overrides("file:///srv/repo")
	o.ConnString = "host=/var/run/postgresql user=postgres passfile=/root/.pgpass"
	if err := o.Validate(); err != nil {
		t.Fatalf("a connection string naming a password file is fine: %v", err)
	}
}

func TestNewMergesOverridesOverTheConfig(t *testing.T) {
	cfg := config.Default()
	cfg.RunAs = "pg"
	cfg.Repository.URL = "s3://backups/main"
	cfg.Repository.KeyFile = "/etc/pgguard/repo.key"
	cfg.Repository.S3.Endpoint = "https://minio:9000"
	cfg.Postgres.DataDir, cfg.Postgres.Port, cfg.Postgres.ConnectAddress = "/srv/pg/data", 5433, "*"
	cfg.Postgres.Superuser = config.User{Username: "admin", Password: "s3cret"}

	s, err := reposettings.New(&cfg, reposettings.DefaultOverrides())
	if err != nil {
		t.Fatal(err)
	}
	if s.RepoURL != "s3://backups/main" || s.KeyFile != "/etc/pgguard/repo.key" || s.DataDir != "/srv/pg/data" || s.Port != 5433 || s.RunAs() != "pg" {
		t.Fatalf("settings %+v do not take the config's repository and postgresql sections", s)
	}
	if !s.S3.PathStyle {
		t.Fatal("a custom S3 endpoint is a self-hosted server: buckets must be addressed by path")
	}
	if s.ConnStr != "postgres://admin:s3cret@127.0.0.1:5433/postgres" {
		t.Fatalf("connection from the config = %q; want the superuser on loopback for a wildcard connect address", s.ConnStr)
	}
	if s.Rate != nil || s.Channels != 4 || s.Retry.ReconnectTimeout != 5*time.Minute {
		t.Fatalf("defaults changed: rate %v, channels %d, reconnect %s", s.Rate, s.Channels, s.Retry.ReconnectTimeout)
	}

	o := reposettings.DefaultOverrides()
	o.RepoURL, o.DataDir, o.ConnString, o.RateLimit = "file:///mnt/repo", "/mnt/data", "host=/tmp user=me", "unlimited,08:00-20:00=1MiB"
	s, err = reposettings.New(&cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.RepoURL != "file:///mnt/repo" || s.DataDir != "/mnt/data" || s.ConnStr != "host=/tmp user=me" {
		t.Fatalf("the overrides must win over the config: %+v", s)
	}
	if s.Rate == nil || len(s.Rate.Windows) != 1 || s.Rate.Default != 0 {
		t.Fatalf("rate limit %+v; want unlimited with one window", s.Rate)
	}
}

func TestNewWithoutConfig(t *testing.T) {
	if _, err := reposettings.New(nil, overrides("")); err == nil || !strings.Contains(err.Error(), "no repository: give --repo") || !badinput.Is(err) {
		t.Fatalf("no repository anywhere: %v; want bad input saying what to give", err)
	}
	if _, err := reposettings.New(nil, overrides("relative/repo")); err == nil || !badinput.Is(err) {
		t.Fatalf("a relative repository path: %v; want bad input", err)
	}
	s, err := reposettings.New(nil, overrides("file:///srv/repo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequireConn(); err == nil || !strings.Contains(err.Error(), "no PostgreSQL connection: give --pg") {
		t.Fatalf("RequireConn without --pg or a config: %v", err)
	}
	if s.RunAs() != "" || s.Waldump() != "" {
		t.Fatalf("without a config there is no run_as (%q) and no renamed pg_waldump (%q)", s.RunAs(), s.Waldump())
	}
}

func TestValidateChecksSettingsMadeByHand(t *testing.T) {
	s, err := reposettings.New(nil, overrides("file:///srv/repo"))
	if err != nil {
		t.Fatal(err)
	}
	s.Channels = 0
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--channels 0") {
		t.Fatalf("Validate of zero channels: %v", err)
	}
}

func TestLoadChecksTheOverridesBeforeReadingTheConfig(t *testing.T) {
	o := overrides("")
	o.Channels = 0
	_, err := reposettings.Load(filepath.Join(t.TempDir(), "missing.yaml"), o)
	if err == nil || !strings.Contains(err.Error(), "--channels 0") {
		t.Fatalf("Load = %v; want the typo in the flags reported before the config is read", err)
	}
	_, err = reposettings.Load(filepath.Join(t.TempDir(), "missing.yaml"), overrides(""))
	if err == nil || !badinput.Is(err) {
		t.Fatalf("a missing config: %v; want bad input", err)
	}
}

func TestLoadRefusesAConfigOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.yaml")
	yaml := "cluster: c\nname: n1\npostgresql:\n  data_dir: " + filepath.Join(dir, "data") + "\n  port: 15999\netcd:\n  endpoints: [\"http://127.0.0.1:2379\"]\n  allow_plaintext: true\nrepository:\n  url: file://" + filepath.Join(dir, "repo") + "\n"
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := reposettings.Load(path, overrides("")); err == nil || !strings.Contains(err.Error(), "chmod 600") || !badinput.Is(err) {
		t.Fatalf("Load of a 0644 node.yaml: %v; want bad input saying chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := reposettings.Load(path, overrides(""))
	if err != nil {
		t.Fatal(err)
	}
	if s.ConfigPath != path || s.Config == nil || s.RepoURL != "file://"+filepath.Join(dir, "repo") || s.Port != 15999 {
		t.Fatalf("settings from %s: %+v", path, s)
	}
}

func TestRateWait(t *testing.T) {
	if w, err := reposettings.RateWait(""); w != nil || err != nil {
		t.Fatalf("no limit: %v, %v; want none", w != nil, err)
	}
	if w, err := reposettings.RateWait("08:00-20:00=5MiB"); w == nil || err != nil {
		t.Fatalf("a limit by time of day: %v, %v; want a wait function", w != nil, err)
	}
	if _, err := reposettings.RateWait("5 parsecs"); err == nil {
		t.Fatal("a limit that is no rate was accepted")
	}
}
