package repoops_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/repoops"
)

func TestResolveBackupRef(t *testing.T) {
	s := testSettings(t)
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	upgrade := addLogical(t, s, "shop", t0, "before the upgrade")
	addLogical(t, s, "shop", t0.Add(time.Hour), "nightly")
	addLogical(t, s, "shop", t0.Add(2*time.Hour), "nightly")
	ctx := context.Background()
	err := s.With(ctx, func(r *repo.Repository) error {
		cases := []struct {
			name, ref, want, mention string
		}{
			{"an id is taken as it is, even one that does not exist", "20261101T020000Z-x", "20261101T020000Z-x", ""},
			{"no reference stays none (the newest that fits is chosen later)", "", "", ""},
			{"a label names its one backup", "label:before the upgrade", upgrade, ""},
			{"a label no backup carries lists the labels there are", "label:weekly", "", `--backup label:weekly: no backup is labelled "weekly" (labels: `},
			{"a label two backups carry is refused: name one by its id", "label:nightly", "", "2 backups are labelled \"nightly\""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := repoops.ResolveBackupRef(ctx, r, tc.ref)
				if tc.mention == "" {
					if err != nil || got != tc.want {
						t.Fatalf("ResolveBackupRef(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
					}
					return
				}
				if err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), tc.mention) {
					t.Fatalf("ResolveBackupRef(%q) = %q, %v; want bad input naming %q", tc.ref, got, err, tc.mention)
				}
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPinLabelUnpin(t *testing.T) {
	s := testSettings(t)
	ctx := context.Background()
	id := addLogical(t, s, "shop", time.Now().Add(-time.Hour), "")
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	a, err := repoops.Pin(ctx, s, id, "alice@db1", at)
	if err != nil || a.ID != id || !a.Pinned || a.PinnedBy != "alice@db1" || !a.PinnedAt.Equal(at) || a.PinnedAt.Location() != time.UTC || a.Change != "pinned" {
		t.Fatalf("Pin = %+v, %v; want pinned by alice at %s in UTC", a, err, at)
	}
	if a, err = repoops.Label(ctx, s, id, "before the upgrade"); err != nil || a.Label != "before the upgrade" || !a.Pinned || a.Change != `labelled "before the upgrade"` {
		t.Fatalf("Label = %+v, %v; want the label added and the pin kept", a, err)
	}
	if _, err := repoops.Label(ctx, s, id, "two\nlines"); err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), "control character") {
		t.Fatalf("a label with a newline: %v; want bad input", err)
	}
	if a, err = repoops.Unpin(ctx, s, id); err != nil || a.Pinned || a.PinnedBy != "" || !a.PinnedAt.IsZero() || a.Label != "before the upgrade" {
		t.Fatalf("Unpin = %+v, %v; want the pin gone and the label kept", a, err)
	}
	list, err := repoops.List(ctx, s)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Label != "before the upgrade" || list[0].Kind != repo.KindLogical {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestDelete(t *testing.T) {
	s := testSettings(t)
	ctx := context.Background()
	t0 := time.Now().Add(-3 * time.Hour)
	oldest := addLogical(t, s, "shop", t0, "")
	pinned := addLogical(t, s, "shop", t0.Add(time.Hour), "")
	newest := addLogical(t, s, "shop", t0.Add(2*time.Hour), "")
	if _, err := repoops.Pin(ctx, s, pinned, "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	ids := func() []string {
		t.Helper()
		list, err := repoops.List(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range list {
			out = append(out, b.ID)
		}
		return out
	}

	if _, err := repoops.Delete(ctx, s, repoops.DeleteRequest{ID: oldest, Keep: -1}); err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), "--keep -1") {
		t.Fatalf("a negative --keep: %v", err)
	}
	res, err := repoops.Delete(ctx, s, repoops.DeleteRequest{ID: pinned, Keep: 1})
	var refused *repoops.RefusedError
	if !errors.Is(err, backup.ErrRefused) || !errors.As(err, &refused) || !strings.Contains(err.Error(), "delete of backup "+pinned+" refused: ") || len(res.Checks) == 0 {
		t.Fatalf("delete of a pinned backup: %v, checks %+v; want a refusal with its checks", err, res.Checks)
	}
	asked := false
	_, err = repoops.Delete(ctx, s, repoops.DeleteRequest{ID: oldest, Keep: 1, Confirm: func() bool { asked = true; return false }})
	if !asked || err == nil || !badinput.Is(err) || err.Error() != "delete not confirmed (use --yes in scripts)" {
		t.Fatalf("a delete not confirmed: asked %v, %v", asked, err)
	}
	res, err = repoops.Delete(ctx, s, repoops.DeleteRequest{ID: oldest, Keep: 1, CheckOnly: true, Confirm: func() bool { t.Fatal("--check asked"); return false }})
	if err != nil || res.Deleted || len(failedChecks(res)) != 0 {
		t.Fatalf("--check: %+v, %v; want every check passing and nothing deleted", res, err)
	}
	if got := ids(); !slices.Equal(got, []string{oldest, pinned, newest}) {
		t.Fatalf("after refusals and a check only: %v; want all three backups", got)
	}
	res, err = repoops.Delete(ctx, s, repoops.DeleteRequest{ID: oldest, Keep: 1, Confirm: func() bool { return true }})
	if err != nil || !res.Deleted {
		t.Fatalf("a confirmed delete: %+v, %v", res, err)
	}
	if got := ids(); !slices.Equal(got, []string{pinned, newest}) {
		t.Fatalf("after deleting %s: %v", oldest, got)
	}
	if _, err := repoops.Delete(ctx, s, repoops.DeleteRequest{ID: newest, Keep: 2}); !errors.Is(err, backup.ErrRefused) || !strings.Contains(err.Error(), "lower --keep") {
		t.Fatalf("a delete below --keep: %v", err)
	}
}

// failedChecks names the checks of a delete that failed.
func failedChecks(res backup.DeleteResult) []string {
	var failed []string
	for _, c := range res.Checks {
		if !c.OK {
			failed = append(failed, c.Name)
		}
	}
	return failed
}
