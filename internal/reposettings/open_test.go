package reposettings_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

const pass = "correct horse battery staple"

// settings are settings for the repository at dir with env as the
// environment.
func settings(t *testing.T, dir string, env map[string]string) reposettings.Settings {
	t.Helper()
	s, err := reposettings.New(nil, overrides("file://"+dir))
	if err != nil {
		t.Fatal(err)
	}
	s.Getenv = func(k string) string { return env[k] }
	return s
}

func TestKeyComesFromTheKeyFileOrElseTheEnvironment(t *testing.T) {
	s := settings(t, "/srv/repo", nil)
	if _, err := s.Key(); err == nil || !strings.Contains(err.Error(), "no repository key: set PGGUARD_PASSPHRASE") || !badinput.Is(err) {
		t.Fatalf("no key anywhere: %v", err)
	}
	s.KeyFile = filepath.Join(t.TempDir(), "missing.key")
	if _, err := s.Key(); err == nil || !strings.Contains(err.Error(), "repository.key_file "+s.KeyFile) || !badinput.Is(err) {
		t.Fatalf("a missing key file: %v; want bad input naming repository.key_file", err)
	}
	s = settings(t, "/srv/repo", map[string]string{reposettings.PassphraseEnv: "short"})
	if _, err := s.Key(); err != nil {
		t.Fatalf("an existing repository opens with whatever passphrase it has: %v", err)
	}
	if _, err := s.NewKey(); err == nil || !strings.Contains(err.Error(), "shorter than 12 characters") || strings.Contains(err.Error(), "short\"") {
		t.Fatalf("a new repository with a short passphrase: %v", err)
	}
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	testrepo.Create(t, dir, pass)
	var notices bytes.Buffer
	s := settings(t, dir, map[string]string{reposettings.PassphraseEnv: "a wrong passphrase"})
	s.Notices = &notices
	_, err := s.Open(context.Background())
	if err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), "the passphrase in PGGUARD_PASSPHRASE does not open it (wrong key?); nothing was written") {
		t.Fatalf("a wrong passphrase: %v; want bad input naming where the key came from", err)
	}
	if strings.Contains(err.Error(), "a wrong passphrase") {
		t.Fatalf("the error repeats the passphrase: %v", err)
	}
	s = settings(t, dir, map[string]string{reposettings.PassphraseEnv: pass})
	s.Notices = &notices
	for name, open := range map[string]func(context.Context) (*repo.Repository, error){"Open": s.Open, "OpenWAL": s.OpenWAL} {
		r, err := open(context.Background())
		if err != nil {
			t.Fatalf("%s with the right passphrase: %v", name, err)
		}
		r.Close(context.Background())
	}
	called := false
	if err := s.With(context.Background(), func(r *repo.Repository) error { called = r != nil; return nil }); err != nil || !called {
		t.Fatalf("With: %v, called %v", err, called)
	}
	if notices.Len() != 0 {
		t.Fatalf("opening a sound repository printed notices: %q", notices.String())
	}
}

func TestDestination(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	s := settings(t, src, nil)
	if _, err := s.Destination(""); err == nil || !strings.Contains(err.Error(), "no destination: give --to-repo") {
		t.Fatalf("no destination anywhere: %v", err)
	}
	if _, err := s.Destination(src); err == nil || !strings.Contains(err.Error(), "is the source repository") {
		t.Fatalf("the source as its own destination (a plain path): %v", err)
	}
	if _, err := s.Destination("file://" + src + "/"); err == nil || !strings.Contains(err.Error(), "is the source repository") {
		t.Fatalf("the source as its own destination (another spelling): %v", err)
	}
	if _, err := s.Destination("ftp://x"); err == nil || !strings.Contains(err.Error(), "--to-repo:") || !badinput.Is(err) {
		t.Fatalf("an unsupported destination: %v", err)
	}

	cfg := config.Default()
	cfg.Repository.URL = "file://" + src
	cfg.Repository.CopyTo = config.CopyTarget{URL: "file://" + filepath.Join(base, "offsite"), KeyFile: filepath.Join(base, "missing.key")}
	withCfg, err := reposettings.New(&cfg, reposettings.DefaultOverrides())
	if err != nil {
		t.Fatal(err)
	}
	d, err := withCfg.Destination("")
	if err != nil || d.URL() != cfg.Repository.CopyTo.URL {
		t.Fatalf("destination from repository.copy_to: %v, %v", d.URL(), err)
	}
	if _, err := d.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "repository.copy_to.key_file") {
		t.Fatalf("a missing copy_to key file: %v", err)
	}
}

func TestOpenDestinationWritesNothing(t *testing.T) {
	base := t.TempDir()
	dst := filepath.Join(base, "dst")
	s := settings(t, filepath.Join(base, "src"), nil)
	d, err := s.Destination("file://" + dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "no key for the destination repository: set PGGUARD_TO_PASSPHRASE") {
		t.Fatalf("no destination key: %v", err)
	}
	s = settings(t, filepath.Join(base, "src"), map[string]string{reposettings.ToPassphraseEnv: pass})
	if d, err = s.Destination("file://" + dst); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist; create it first with: PGGUARD_PASSPHRASE=<destination passphrase> pgguard repo init") {
		t.Fatalf("a mistyped destination: %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("opening a missing destination created it: %v", err)
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "is not a pgguard repository") {
		t.Fatalf("an empty directory as destination: %v", err)
	}
	testrepo.Create(t, dst, "the destination's own passphrase")
	if _, err := d.Open(context.Background()); err == nil || !strings.Contains(err.Error(), "the passphrase in PGGUARD_TO_PASSPHRASE does not open it") {
		t.Fatalf("a wrong destination key: %v", err)
	}
	testrepo.Create(t, filepath.Join(base, "dst2"), pass)
	if d, err = s.Destination("file://" + filepath.Join(base, "dst2")); err != nil {
		t.Fatal(err)
	}
	r, err := d.Open(context.Background())
	if err != nil {
		t.Fatalf("the right destination key: %v", err)
	}
	r.Close(context.Background())
}

func TestDefaultRestoreCommandNamesTheConfigOrTheRepositoryOnly(t *testing.T) {
	got, err := reposettings.DefaultRestoreCommand("/usr/bin/pgguard", "/etc/pgguard/node.yaml", "file:///ignored")
	if err != nil || got != "/usr/bin/pgguard wal-fetch -c /etc/pgguard/node.yaml %f %p" {
		t.Fatalf("with a config: %q, %v", got, err)
	}
	got, err = reposettings.DefaultRestoreCommand("/opt/my tools/pgguard", "", "s3://bucket/it's")
	if err != nil || got != `'/opt/my tools/pgguard' wal-fetch --repo 's3://bucket/it'\''s' %f %p` {
		t.Fatalf("without a config, with characters sh must not see: %q, %v", got, err)
	}
	cwd, _ := os.Getwd()
	got, _ = reposettings.DefaultRestoreCommand("/usr/bin/pgguard", "node.yaml", "")
	if !strings.Contains(got, " -c "+filepath.Join(cwd, "node.yaml")+" ") {
		t.Fatalf("a relative config path must become absolute (the server runs elsewhere): %q", got)
	}
	s := settings(t, "/srv/repo", map[string]string{reposettings.PassphraseEnv: pass})
	got, err = s.RestoreCommand()
	if err != nil || strings.Contains(got, pass) || !strings.Contains(got, "--repo file:///srv/repo %f %p") {
		t.Fatalf("RestoreCommand = %q, %v; want this binary's wal-fetch with --repo and no secret", got, err)
	}
}
