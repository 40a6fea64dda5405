package backup_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/backup"
)

func TestPlanPrune(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	backups := []backup.BackupInfo{
		{ID: "20261101T000000Z-00000001", StartTime: now.Add(-22 * day), StartWAL: "000000010000000000000002"},
		{ID: "20261115T000000Z-00000002", StartTime: now.Add(-8 * day), StartWAL: "000000010000000000000010"},
		{ID: "20261122T000000Z-00000003", StartTime: now.Add(-1 * day), StartWAL: "000000020000000000000020"},
	}
	wal := []backup.WALInfo{
		{Name: "000000010000000000000001", ModTime: now.Add(-23 * day)},
		{Name: "000000010000000000000002", ModTime: now.Add(-22 * day)},
		{Name: "000000010000000000000002.00000028.backup", ModTime: now.Add(-22 * day)},
		{Name: "00000002.history", ModTime: now.Add(-10 * day)},
		{Name: "00000001000000000000000F", ModTime: now.Add(-8 * day)},
		{Name: "000000010000000000000010", ModTime: now.Add(-8 * day)},
		{Name: "00000002000000000000001F", ModTime: now.Add(-2 * day)},
		{Name: "000000020000000000000020", ModTime: now.Add(-1 * day)},
	}
	cases := []struct {
		name      string
		pol       backup.RetentionPolicy
		delete    []string
		deleteWAL []string
	}{
		{"keep 2 by count, keep all WAL: oldest backup goes, no WAL goes",
			backup.RetentionPolicy{Keep: 2, WAL: backup.WALKeepAll},
			[]string{"20261101T000000Z-00000001"}, nil},
		{"keep 1, covered: WAL before the kept backup's start goes on every timeline, history stays",
			backup.RetentionPolicy{Keep: 1, WAL: backup.WALCovered},
			[]string{"20261101T000000Z-00000001", "20261115T000000Z-00000002"},
			[]string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000002.00000028.backup",
				"00000001000000000000000F", "000000010000000000000010", "00000002000000000000001F"}},
		{"keep 1 but 10 days: age keeps the second backup and its WAL",
			backup.RetentionPolicy{Keep: 1, KeepFor: 10 * day, WAL: backup.WALCovered},
			[]string{"20261101T000000Z-00000001"},
			[]string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000002.00000028.backup", "00000001000000000000000F"}},
		{"keep 1, days:5: covered WAL younger than 5 days stays",
			backup.RetentionPolicy{Keep: 1, WAL: backup.WALDays, WALDays: 5},
			[]string{"20261101T000000Z-00000001", "20261115T000000Z-00000002"},
			[]string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000002.00000028.backup",
				"00000001000000000000000F", "000000010000000000000010"}},
		{"keep more than exist: no backup goes, only WAL older than the oldest backup",
			backup.RetentionPolicy{Keep: 5, WAL: backup.WALCovered},
			nil, []string{"000000010000000000000001"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan := backup.PlanPrune(backups, wal, c.pol, now)
			if !slices.Equal(plan.DeleteBackups, c.delete) {
				t.Errorf("delete backups %v, want %v", plan.DeleteBackups, c.delete)
			}
			if !slices.Equal(plan.DeleteWAL, c.deleteWAL) {
				t.Errorf("delete WAL %v, want %v", plan.DeleteWAL, c.deleteWAL)
			}
			if len(plan.Keep)+len(plan.DeleteBackups) != len(backups) || len(plan.Keep) == 0 {
				t.Errorf("kept %v: every backup must be kept or deleted, at least one kept", plan.Keep)
			}
		})
	}
}

func TestPlanPruneNoBackupsDeletesNoWAL(t *testing.T) {
	plan := backup.PlanPrune(nil, []backup.WALInfo{{Name: "000000010000000000000001"}}, backup.RetentionPolicy{Keep: 1, WAL: backup.WALCovered}, time.Now())
	if len(plan.DeleteWAL) != 0 {
		t.Errorf("with no backup at all prune deleted WAL %v", plan.DeleteWAL)
	}
}

// TestPruneKeepsTheKeptBackupRestorable: three backups, prune --keep 1
// --wal covered deletes two and the WAL before the third, garbage-collects,
// and the kept incremental still verifies and restores.
func TestPruneKeepsTheKeptBackupRestorable(t *testing.T) {
	e, pg := newRepoEnv(t, nil)
	pg.Pgbench(t, "-i", "-s", "2", "-q")
	e.backup("full")
	pg.Pgbench(t, "-c", "2", "-t", "100", "-n")
	pg.SwitchWALAndWaitArchived(t)
	e.backup("incr")
	pg.Pgbench(t, "-c", "2", "-t", "100", "-n")
	pg.SwitchWALAndWaitArchived(t)
	kept := e.backup("incr")
	pg.Pgbench(t, "-c", "2", "-t", "50", "-n")
	want := pg.QueryString(t, fingerprintSQL)
	pg.SwitchWALAndWaitArchived(t)

	res := e.ok("prune", "--keep", "1", "--wal", "covered", "-o", "json")
	var out struct {
		Plan backup.PrunePlan
		GC   struct{ PacksDeleted int }
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("prune printed %q: %v", res.stdout, err)
	}
	if !slices.Equal(out.Plan.Keep, []string{kept.ID}) || len(out.Plan.DeleteBackups) != 2 || len(out.Plan.DeleteWAL) == 0 {
		t.Fatalf("prune plan %+v: want only %s kept, two deleted and some WAL deleted", out.Plan, kept.ID)
	}
	t.Logf("prune deleted %d backups, %d WAL files, %d packs", len(out.Plan.DeleteBackups), len(out.Plan.DeleteWAL), out.GC.PacksDeleted)
	e.ok("verify", "--all")

	r, m := e.manifest(kept.ID)
	restored := e.startRestored("kept backup restored after prune", r, m, nil)
	if got := restored.QueryString(t, fingerprintSQL); got != want {
		t.Errorf("restored after prune: %s, primary had %s", got, want)
	}
}
