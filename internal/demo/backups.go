package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/osuser"
)

// The demo's local backup repository and its default jobs.

// RepoDir and KeyFile are the demo's local backup repository and its key.
func (l Layout) RepoDir() string { return filepath.Join(l.Dir, "repo") }
func (l Layout) KeyFile() string { return filepath.Join(l.Dir, "repo.key") }

// WithBackups is an edit for Write: every node archives WAL into the demo's
// repository and may run backup jobs.
func (l Layout) WithBackups(cfg *config.Config) {
	cfg.Repository.URL = "file://" + l.RepoDir()
	cfg.Repository.KeyFile = l.KeyFile()
	cfg.Archive.Enabled = true
}

// InitRepository writes a random key file and initialises the repository
// with exe (pgguard), both owned by acct.
func (l Layout) InitRepository(exe string, acct osuser.Account) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(l.KeyFile(), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(exe, "repo", "init", "-c", l.ConfigPath(l.Nodes[0])).CombinedOutput(); err != nil {
		return fmt.Errorf("repo init: %v: %s", err, out)
	}
	for _, p := range []string{l.KeyFile(), l.RepoDir()} {
		if err := acct.ChownTree(p); err != nil {
			return err
		}
	}
	return nil
}

// DefaultJobs is the schedule a new demo cluster gets: a first full backup
// at once, a daily full, hourly incrementals, a daily prune keeping a week
// and a weekly verification of every backup.
func DefaultJobs(now time.Time) ([]jobs.Job, error) {
	specs := []struct {
		id, sched string
		kind      jobs.Kind
		opts      jobs.Options
	}{
		{"first-full", "immediate", jobs.KindFull, jobs.Options{Channels: 2}},
		{"daily-full", "daily@01:00", jobs.KindFull, jobs.Options{Channels: 2}},
		{"hourly-incr", "hourly/1h@00:30-00:30", jobs.KindIncr, jobs.Options{Channels: 2}},
		{"daily-prune", "daily@03:00", jobs.KindPrune, jobs.Options{Keep: 7, WAL: "covered"}},
		{"weekly-verify", "weekly:sun@04:00", jobs.KindVerify, jobs.Options{}},
		// A drill soon after the first full, so a new user sees one pass,
		// then every week.
		{"first-drill", "once@" + now.Add(3*time.Minute).UTC().Format("2006-01-02T15:04:05Z"), jobs.KindDrill, jobs.Options{Channels: 2}},
		{"weekly-drill", "weekly:sat@05:00", jobs.KindDrill, jobs.Options{Channels: 2}},
	}
	var out []jobs.Job
	for _, s := range specs {
		sched, err := schedule.Parse(s.sched, now)
		if err != nil {
			return nil, fmt.Errorf("demo job %s: %w", s.id, err)
		}
		j := jobs.Job{ID: s.id, Name: s.id, Kind: s.kind, Schedule: sched, Enabled: true, Options: s.opts, Created: now, Updated: now}
		if err := j.Validate(); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// InstallJobs stores the default jobs in the cluster.
func (l Layout) InstallJobs(ctx context.Context, now time.Time) ([]jobs.Job, error) {
	list, err := DefaultJobs(now)
	if err != nil {
		return nil, err
	}
	store, err := l.OpenStore()
	if err != nil {
		return nil, err
	}
	defer store.Close()
	for _, j := range list {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := store.PutJob(sctx, j, true)
		cancel()
		if err != nil && !errors.Is(err, dcs.ErrExists) {
			return nil, err
		}
	}
	return list, nil
}
