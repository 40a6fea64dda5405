package backup_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/repo"
)

func TestPlanPruneKeepsPinnedBackupsAndOnlyTheirWAL(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 12, d, 0, 0, 0, 0, time.UTC) }
	seg := func(n int) string { return "0000000100000000000000" + strings.ToUpper(hex2(n)) }
	backups := []backup.BackupInfo{
		{ID: "a", StartTime: day(1), StartWAL: seg(0x10), StopWAL: seg(0x11), Pinned: true},
		{ID: "b", StartTime: day(2), StartWAL: seg(0x20), StopWAL: seg(0x20)},
		{ID: "c", StartTime: day(3), StartWAL: seg(0x30), StopWAL: seg(0x30)},
	}
	var wal []backup.WALInfo
	for n := 0x0f; n <= 0x31; n++ {
		wal = append(wal, backup.WALInfo{Name: seg(n), ModTime: day(1)})
	}
	plan := backup.PlanPrune(backups, wal, backup.RetentionPolicy{Keep: 1, WAL: backup.WALCovered}, day(4))
	if !slices.Equal(plan.Keep, []string{"a", "c"}) || !slices.Equal(plan.DeleteBackups, []string{"b"}) {
		t.Fatalf("kept %v deleted %v; want the pinned a and the newest c kept, b deleted (a pin does not count against --keep)", plan.Keep, plan.DeleteBackups)
	}
	for _, w := range []string{seg(0x10), seg(0x11)} {
		if slices.Contains(plan.DeleteWAL, w) {
			t.Fatalf("WAL %s of the pinned backup deleted", w)
		}
	}
	for _, w := range []string{seg(0x0f), seg(0x12), seg(0x2f)} {
		if !slices.Contains(plan.DeleteWAL, w) {
			t.Fatalf("WAL %s kept: a pin keeps only its backup's own WAL (deleted: %v)", w, plan.DeleteWAL)
		}
	}
	if slices.Contains(plan.DeleteWAL, seg(0x30)) {
		t.Fatal("WAL of the newest kept backup deleted")
	}
}

func hex2(n int) string {
	return strings.ToUpper(string("0123456789abcdef"[n>>4]) + string("0123456789abcdef"[n&15]))
}

func TestDeleteChecks(t *testing.T) {
	bs := []backup.BackupInfo{
		{ID: "f1", Kind: repo.KindFull, Pinned: true},
		{ID: "i1", Kind: repo.KindIncr},
		{ID: "l1", Kind: repo.KindLogical},
	}
	failed := func(checks []ha.Check) []string {
		var out []string
		for _, c := range ha.Failed(checks) {
			out = append(out, c.Name)
		}
		return out
	}
	for _, c := range []struct {
		what string
		id   string
		keep int
		want []string // the checks that fail
	}{
		{"unknown id", "zz", 1, []string{"backup exists"}},
		{"pinned", "f1", 1, []string{"backup not pinned"}},
		{"incremental with a full left", "i1", 1, nil},
		{"below --keep 2", "i1", 2, []string{"retention minimum kept"}},
		// Logical backups count on their own: the only one cannot go with
		// --keep 1, whatever physical backups remain.
		{"last logical backup", "l1", 1, []string{"retention minimum kept"}},
		{"last logical backup with --keep 0", "l1", 0, nil},
	} {
		if f := failed(backup.DeleteChecks(bs, c.id, c.keep)); !slices.Equal(f, c.want) {
			t.Errorf("%s: failed %v, want %v", c.what, f, c.want)
		}
	}
}

// Backup-set management end to end, through the command line, on a real
// server and repository (issue 18 item 1): a label given at backup time,
// a pin that prune and delete respect, a delete refused (changing nothing)
// while pinned, while the repository is in use and below the minimum, a
// delete that leaves every other backup whole, and a restore that picks
// its backup by label.
func TestBackupSetPinLabelDelete(t *testing.T) {
	e, pg := newRepoEnv(t, nil)
	pg.Pgbench(t, "-i", "-s", "1", "-q")
	labelled := e.backup("full", "--label", "before the upgrade")
	pg.Pgbench(t, "-c", "2", "-t", "50", "-n")
	middle := e.backup("incr")
	pg.Pgbench(t, "-c", "2", "-t", "50", "-n")
	newest := e.backup("full")

	type listed struct {
		ID     string `json:"id"`
		Label  string `json:"label"`
		Pinned bool   `json:"pinned"`
	}
	list := func() map[string]listed {
		t.Helper()
		var l []listed
		res := e.ok("backups", "-o", "json")
		if err := json.Unmarshal([]byte(res.stdout), &l); err != nil {
			t.Fatalf("backups printed %q: %v", res.stdout, err)
		}
		out := map[string]listed{}
		for _, b := range l {
			out[b.ID] = b
		}
		return out
	}
	if l := list(); l[labelled.ID].Label != "before the upgrade" || l[labelled.ID].Pinned || len(l) != 3 {
		t.Fatalf("backups after three: %+v; want 3, %s labelled and not pinned", l, labelled.ID)
	}
	if res := e.ok("backups"); !strings.Contains(res.stdout, "before the upgrade") || !strings.Contains(res.stdout, "LABEL") {
		t.Fatalf("the table does not show the label:\n%s", res.stdout)
	}
	refused := func(what, wantCheck string, args ...string) {
		t.Helper()
		res := e.run(nil, append(args, "-c", e.cfgPath)...)
		if res.code == 0 || !strings.Contains(res.stdout, "[FAIL] "+wantCheck) {
			t.Fatalf("%s: exit %d, want a refusal on %q\nstdout: %s\nstderr: %s", what, res.code, wantCheck, res.stdout, res.stderr)
		}
		if len(list()) != 3 {
			t.Fatalf("%s: a refused delete changed the backup set", what)
		}
	}
	e.ok("backups", "pin", labelled.ID)
	refused("delete of a pinned backup", "backup not pinned", "backups", "delete", labelled.ID, "--yes")
	refused("delete below the minimum", "retention minimum kept", "backups", "delete", newest.ID, "--keep", "3", "--yes")

	// A copy (or backup) in progress holds a shared lock: no delete.
	ctx := context.Background()
	r := e.openRepo()
	lk, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	refused("delete while the repository is in use", "repository not in use", "backups", "delete", middle.ID, "--yes")
	lk.Unlock(ctx)
	r.Close(ctx)

	if res := e.ok("backups", "delete", middle.ID, "--check"); !strings.Contains(res.stdout, "[pass] retention minimum kept") || len(list()) != 3 {
		t.Fatalf("--check: %s (backups: %d)", res.stdout, len(list()))
	}
	e.ok("backups", "delete", middle.ID, "--yes")
	if l := list(); len(l) != 2 || l[labelled.ID].ID == "" || l[newest.ID].ID == "" {
		t.Fatalf("after deleting %s: %+v", middle.ID, l)
	}
	e.ok("verify", "--all")

	// prune --keep 1 keeps the newest and the pinned one.
	res := e.ok("prune", "--keep", "1", "-o", "json")
	var pr struct{ Plan backup.PrunePlan }
	if err := json.Unmarshal([]byte(res.stdout), &pr); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pr.Plan.Keep, labelled.ID) || !slices.Contains(pr.Plan.Keep, newest.ID) || len(pr.Plan.DeleteBackups) != 0 {
		t.Fatalf("prune plan %+v: want the pinned %s and the newest %s kept", pr.Plan, labelled.ID, newest.ID)
	}

	// A restore picks its backup by label.
	target := filepath.Join(e.dir, "restored")
	res = e.ok("restore", "--backup", "label:before the upgrade", "--target-dir", target, "--immediate", "-o", "json")
	var rr struct {
		BackupID string `json:"backup_id"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &rr); err != nil || rr.BackupID != labelled.ID {
		t.Fatalf("restore by label printed %q (%v); want backup %s", res.stdout, err, labelled.ID)
	}
	if res := e.run(nil, "restore", "--backup", "label:no such label", "--target-dir", filepath.Join(e.dir, "other"), "--immediate", "-c", e.cfgPath); res.code == 0 || !strings.Contains(res.stderr, `no backup is labelled "no such label" (labels: `+labelled.ID+`="before the upgrade")`) {
		t.Fatalf("restore by an unknown label: exit %d\n%s", res.code, res.stderr)
	}

	e.ok("backups", "unpin", labelled.ID)
	e.ok("backups", "delete", labelled.ID, "--yes")
	if l := list(); len(l) != 1 || l[newest.ID].ID == "" {
		t.Fatalf("after unpinning and deleting %s: %+v", labelled.ID, l)
	}
	e.ok("verify", "--all")
}
