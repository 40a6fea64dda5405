package repoops_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

const pass = "correct horse battery staple"

// testSettings are the settings of a new, empty repository in a temporary
// directory (a KDF fast enough for tests), keyed by pass.
func testSettings(t *testing.T) reposettings.Settings {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	testrepo.Create(t, dir, pass)
	ov := reposettings.DefaultOverrides()
	ov.RepoURL, ov.Channels = "file://"+dir, 2
	s, err := reposettings.New(nil, ov)
	if err != nil {
		t.Fatal(err)
	}
	s.Getenv = func(k string) string {
		if k == reposettings.PassphraseEnv {
			return pass
		}
		return ""
	}
	return s
}

// addLogical stores an empty logical backup of db started at start (a
// logical backup needs no backup_label), labelled label when not empty.
func addLogical(t *testing.T, s reposettings.Settings, db string, start time.Time, label string) string {
	t.Helper()
	ctx := context.Background()
	var id string
	err := s.With(ctx, func(r *repo.Repository) error {
		b, err := r.NewBackup(repo.Header{Kind: repo.KindLogical, StartTime: start, Label: "logical database " + db,
			Logical: &repo.LogicalTarget{DB: db}}, nil)
		if err != nil {
			return err
		}
		hdr := b.Header()
		hdr.StopTime = start.Add(time.Second)
		m, err := b.Finish(ctx, hdr)
		if err != nil {
			return err
		}
		id = m.ID
		if label != "" {
			return r.SetAnnotation(ctx, id, repo.Annotation{Label: label})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
