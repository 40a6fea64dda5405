package reposettings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
)

// PassphraseEnv names the environment variable holding the repository
// passphrase. There is deliberately no flag: a flag shows in ps.
const PassphraseEnv = "PGGUARD_PASSPHRASE"

// MinPassphrase is the shortest passphrase a new repository accepts.
const MinPassphrase = 12

func (s Settings) getenv(name string) string {
	if s.Getenv == nil {
		return os.Getenv(name)
	}
	return s.Getenv(name)
}

func (s Settings) notices() io.Writer {
	if s.Notices == nil {
		return io.Discard
	}
	return s.Notices
}

// Key returns the key from the key file named in the config, or else the
// passphrase in PGGUARD_PASSPHRASE.
func (s Settings) Key() (repo.KeySource, error) {
	if s.KeyFile != "" {
		k, err := repo.KeyFile(s.KeyFile)
		if err != nil {
			return k, badinput.Wrap(fmt.Errorf("repository.key_file %s: %w", s.KeyFile, err))
		}
		return k, nil
	}
	p := s.getenv(PassphraseEnv)
	if p == "" {
		return repo.KeySource{}, badinput.Errorf("no repository key: set %s, or name a key file in the config (repository.key_file, with -c)", PassphraseEnv)
	}
	return repo.Passphrase(p), nil
}

// NewKey is Key for a repository about to be created: it also refuses a
// passphrase shorter than MinPassphrase.
func (s Settings) NewKey() (repo.KeySource, error) {
	k, err := s.Key()
	if err == nil && s.KeyFile == "" && len(s.getenv(PassphraseEnv)) < MinPassphrase {
		return k, badinput.Errorf("%s is shorter than %d characters: choose a longer passphrase, or a key file of random bytes (repository.key_file)", PassphraseEnv, MinPassphrase)
	}
	return k, err
}

// keyWhere names where the key came from, for an error.
func (s Settings) keyWhere() string {
	if s.KeyFile != "" {
		return "key file " + s.KeyFile
	}
	return "passphrase in " + PassphraseEnv
}

// Backend opens the storage the repository lives on, rate limited when
// Rate is set, with retries that wait out a network cut for up to the
// reconnect timeout.
func (s Settings) Backend(ctx context.Context) (storage.Backend, error) {
	be, err := storage.Open(ctx, s.RepoURL, s.S3)
	if err != nil {
		return nil, badinput.Wrap(err)
	}
	if s.Rate != nil {
		// One schedule, one bucket per direction: uploads during a backup,
		// downloads during a restore.
		be = storage.WithRateLimit(be, storage.NewLimiter(*s.Rate, storage.Clock{}), storage.NewLimiter(*s.Rate, storage.Clock{}))
	}
	policy := s.Retry
	if policy.OnRetry == nil {
		policy.OnRetry = retryNotice(s.notices(), be.Location(), time.Now)
	}
	return storage.WithRetry(be, policy), nil
}

// Open opens (unlocks) the repository. A head changed outside pgguard is
// a warning on Notices, not an error.
func (s Settings) Open(ctx context.Context) (*repo.Repository, error) {
	return s.open(ctx, repo.Runtime{Parallel: s.Channels})
}

// OpenWAL opens the repository for the WAL archive commands, without
// loading the block index they never use.
func (s Settings) OpenWAL(ctx context.Context) (*repo.Repository, error) {
	return s.open(ctx, repo.Runtime{Parallel: s.Channels, WALOnly: true})
}

func (s Settings) open(ctx context.Context, rt repo.Runtime) (*repo.Repository, error) {
	key, err := s.Key()
	if err != nil {
		return nil, err
	}
	be, err := s.Backend(ctx)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, be, key, rt)
	if errors.Is(err, repo.ErrWrongKey) {
		return nil, badinput.Errorf("repository %s: the %s does not open it (wrong key?); nothing was written", be.Location(), s.keyWhere())
	}
	if err != nil {
		return nil, err
	}
	if hp := r.HeadProblem(); hp != "" {
		s.Noticef("warning: repository %s changed outside pgguard: %s ('pgguard verify --all' checks what is left)", be.Location(), hp)
	}
	return r, nil
}

// With opens the repository, runs fn and closes the repository, whatever
// fn returns.
func (s Settings) With(ctx context.Context, fn func(r *repo.Repository) error) error {
	r, err := s.Open(ctx)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	return fn(r)
}

// RateWait parses a limit in the form of storage.ParseRateSchedule into
// the wait function of a read or write limit (nil for "": unlimited).
func RateWait(spec string) (func(ctx context.Context, n int) error, error) {
	if spec == "" {
		return nil, nil
	}
	rs, err := storage.ParseRateSchedule(spec)
	if err != nil {
		return nil, err
	}
	return storage.NewLimiter(rs, storage.Clock{}).Wait, nil
}

// retryNotice says on w, at most every 5 s, that the repository does not
// answer and pgguard keeps trying (a job's log shows it; the operation
// fails only after the reconnect timeout).
func retryNotice(w io.Writer, location string, now func() time.Time) func(op, name string, err error, wait time.Duration) {
	var mu sync.Mutex
	var last time.Time
	return func(op, name string, err error, wait time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		t := now()
		if t.Sub(last) < 5*time.Second {
			return
		}
		last = t
		fmt.Fprintf(w, "repository %s unreachable (%s %s: %v), retrying in %s\n", location, op, name, err, wait.Round(100*time.Millisecond))
	}
}

// Noticef writes a line to Notices (nothing when it is nil).
func (s Settings) Noticef(format string, args ...any) {
	fmt.Fprintf(s.notices(), format+"\n", args...)
}
