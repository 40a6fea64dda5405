// Package testrepo makes backup repositories for tests above internal/repo
// and internal/backup: initialised with cheap key derivation, filled by the
// real backup driver from a testcluster server, and closed at cleanup. It
// never opens a repository a test did not make.
package testrepo

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// FastKDF keeps tests quick; the format is the same as with real parameters.
var FastKDF = repo.KDFParams{KDF: repo.Argon2id, Time: 1, Memory: 64, Threads: 1}

// Passphrase is what Local protects its repository with.
const Passphrase = "correct horse battery staple"

// Init initialises a repository on be with the default options and FastKDF,
// then edit's changes (edit may be nil); it is closed at cleanup.
func Init(t testing.TB, be storage.Backend, pass string, edit func(*repo.Options)) *repo.Repository {
	t.Helper()
	r := initFast(t, be, pass, edit)
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// Create makes a repository in dir with FastKDF and closes it at once, for
// tests that then open it the way pgguard does (by URL and passphrase).
// It points XDG_CACHE_HOME, where repo.Open remembers heads, at a
// temporary directory of the test.
func Create(t testing.TB, dir, pass string) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	be, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	initFast(t, be, pass, nil).Close(context.Background())
}

func initFast(t testing.TB, be storage.Backend, pass string, edit func(*repo.Options)) *repo.Repository {
	t.Helper()
	o := repo.DefaultOptions()
	o.KDF = FastKDF
	if edit != nil {
		edit(&o)
	}
	r, err := repo.Init(context.Background(), be, repo.Passphrase(pass), o)
	if err != nil {
		t.Fatalf("init repository at %s: %v", be.Location(), err)
	}
	return r
}

// Local initialises a repository with Passphrase in a new directory the
// PostgreSQL account can use.
func Local(t testing.TB, edit func(*repo.Options)) *repo.Repository {
	t.Helper()
	be, err := storage.NewLocal(filepath.Join(testcluster.Scratch(t, "pgguard-repo-"), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return Init(t, be, Passphrase, edit)
}

// Backup runs the backup driver (internal/backup) against pg into r and
// returns the stored backup's manifest.
func Backup(t testing.TB, r *repo.Repository, pg *testcluster.Postgres, kind repo.Kind) *repo.Manifest {
	t.Helper()
	res, err := backup.Run(context.Background(), backup.Options{Repo: r, ConnString: pg.ConnString(), Kind: kind, Channels: 4})
	if err != nil {
		t.Fatalf("%s backup: %v", kind, err)
	}
	return res.Manifest
}

// File is one file of a backup that Write stores.
type File struct {
	Path string
	Data []byte
}

// Write stores a backup of files into r, full when prev is nil and
// incremental on prev otherwise, and returns its manifest.
func Write(t testing.TB, r *repo.Repository, prev *repo.Manifest, files ...File) *repo.Manifest {
	t.Helper()
	b := Begin(t, r, prev)
	for _, f := range files {
		fw, err := b.CreateFile(context.Background(), repo.FileMeta{Path: f.Path, Mode: 0o600, MTime: time.Now()})
		if err != nil {
			t.Fatalf("create %s: %v", f.Path, err)
		}
		if _, err := fw.Write(f.Data); err != nil {
			t.Fatalf("write %s: %v", f.Path, err)
		}
		if err := fw.Close(); err != nil {
			t.Fatalf("close %s: %v", f.Path, err)
		}
	}
	return Finish(t, b)
}

// Begin starts a backup in r, full when prev is nil and incremental on
// prev otherwise.
func Begin(t testing.TB, r *repo.Repository, prev *repo.Manifest) *repo.Backup {
	t.Helper()
	kind := repo.KindFull
	if prev != nil {
		kind = repo.KindIncr
	}
	b, err := r.NewBackup(repo.Header{Kind: kind, StartTime: time.Now()}, prev)
	if err != nil {
		t.Fatalf("new %s backup: %v", kind, err)
	}
	return b
}

// Finish stamps the backup's stop time and stores its manifest.
func Finish(t testing.TB, b *repo.Backup) *repo.Manifest {
	t.Helper()
	hdr := b.Header()
	hdr.StopTime = time.Now()
	m, err := b.Finish(context.Background(), hdr)
	if err != nil {
		t.Fatalf("finish backup: %v", err)
	}
	return m
}
