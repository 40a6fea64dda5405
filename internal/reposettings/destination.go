package reposettings

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
)

// ToPassphraseEnv names the environment variable holding the destination
// repository's passphrase for `pgguard copy`. Like the source's, it is
// never a flag.
const ToPassphraseEnv = "PGGUARD_TO_PASSPHRASE"

// Destination is the repository a copy writes into. It is not a Settings:
// its key comes from elsewhere, and it is only ever opened, never created.
type Destination struct{ s Settings }

// URL is the destination's location.
func (d Destination) URL() string { return d.s.RepoURL }

// Destination merges toRepo (--to-repo) over repository.copy_to of the
// config. The destination shares the source's channels, retry and rate
// settings; it must not be the source.
func (s Settings) Destination(toRepo string) (Destination, error) {
	d := Settings{RepoURL: toRepo, Channels: s.Channels, Retry: s.Retry, Rate: s.Rate, Getenv: s.Getenv, Notices: s.Notices}
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
		return Destination{}, badinput.Errorf("no destination: give --to-repo file:///path or s3://bucket/prefix, or repository.copy_to.url in the config (-c)")
	}
	dl, err := storage.ParseLocation(d.RepoURL)
	if err != nil {
		return Destination{}, badinput.Wrap(fmt.Errorf("--to-repo: %w", err))
	}
	// A custom endpoint (from the config or AWS_ENDPOINT_URL) is a
	// self-hosted server: address buckets by path, as for the source.
	d.S3 = d.S3.WithEnv(d.getenv)
	d.S3.PathStyle = d.S3.Endpoint != ""
	if sl, _ := storage.ParseLocation(s.RepoURL); sl == dl {
		return Destination{}, badinput.Errorf("--to-repo %s is the source repository; give another destination", d.RepoURL)
	}
	return Destination{s: d}, nil
}

// key returns the destination's key, repository.copy_to.key_file or else
// the passphrase in PGGUARD_TO_PASSPHRASE, and says which for errors.
func (d Destination) key() (repo.KeySource, string, error) {
	if d.s.KeyFile != "" {
		k, err := repo.KeyFile(d.s.KeyFile)
		if err != nil {
			return k, "", badinput.Wrap(fmt.Errorf("repository.copy_to.key_file %s: %w", d.s.KeyFile, err))
		}
		return k, "key file " + d.s.KeyFile, nil
	}
	p := d.s.getenv(ToPassphraseEnv)
	if p == "" {
		return repo.KeySource{}, "", badinput.Errorf("no key for the destination repository: set %s, or name a key file in the config (repository.copy_to.key_file, with -c)", ToPassphraseEnv)
	}
	return repo.Passphrase(p), "passphrase in " + ToPassphraseEnv, nil
}

// Open opens the destination without writing anything: it must already be
// a repository, and the key must open it.
func (d Destination) Open(ctx context.Context) (*repo.Repository, error) {
	key, where, err := d.key()
	if err != nil {
		return nil, err
	}
	initHint := fmt.Sprintf("create it first with: PGGUARD_PASSPHRASE=<destination passphrase> pgguard repo init --repo %s", d.s.RepoURL)
	if loc, _ := storage.ParseLocation(d.s.RepoURL); loc.Scheme == "file" {
		// Opening a local backend creates its directory; a mistyped path
		// must not leave one behind.
		if _, err := os.Stat(loc.Path); errors.Is(err, os.ErrNotExist) {
			return nil, badinput.Errorf("destination repository %s does not exist; %s", loc.Path, initHint)
		}
	}
	be, err := d.s.Backend(ctx)
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
		return nil, badinput.Errorf("destination %s is not a pgguard repository; %s", be.Location(), initHint)
	}
	r, err := repo.Open(ctx, be, key, repo.Runtime{Parallel: d.s.Channels})
	if errors.Is(err, repo.ErrWrongKey) {
		return nil, badinput.Errorf("destination repository %s: the %s does not open it (wrong key?); nothing was written", be.Location(), where)
	}
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	return r, nil
}

var errStopList = errors.New("stop listing")
