package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
	"github.com/pgguard/pgguard/internal/testcluster/testrepo"
)

// history is what the primary looked like at known points.
type history struct {
	pg            *testcluster.Postgres
	archive       string
	full, incr    *repo.Manifest
	histAtFull    string // pgbench_history rows when the full backup ran
	histAtIncr    string
	balanceAtIncr string
	batchTimes    []string // now() after batch i+1 committed
	lsnAfter2     string   // pg_current_wal_lsn() after batch 2 committed
	xidOf1        string   // transaction id of batch 1
}

const batchRows = 1000

// buildHistory loads pgbench, takes a full backup, writes more, takes an
// incremental, then commits three batches of rows into marks, noting the
// time after each and switching WAL so that everything is archived.
func buildHistory(t *testing.T, r *repo.Repository) *history {
	t.Helper()
	pg, archive := testcluster.StartArchivingPostgres(t)
	h := &history{pg: pg, archive: archive}
	pg.Pgbench(t, "-i", "-s", "2", "-q")
	pg.Exec(t, "CREATE TABLE marks (batch int, n int, x bigint DEFAULT txid_current())")
	h.histAtFull = pg.QueryString(t, "SELECT count(*) FROM pgbench_history")
	h.full = testrepo.Backup(t, r, pg, repo.KindFull)
	pg.Pgbench(t, "-c", "2", "-t", "300", "-n")
	h.histAtIncr = pg.QueryString(t, "SELECT count(*) FROM pgbench_history")
	h.balanceAtIncr = pg.QueryString(t, "SELECT sum(abalance) FROM pgbench_accounts")
	h.incr = testrepo.Backup(t, r, pg, repo.KindIncr)
	if h.incr.Kind != repo.KindIncr || h.histAtIncr == h.histAtFull {
		t.Fatalf("setup: want an incremental after new writes, got kind %s, history %s then %s", h.incr.Kind, h.histAtFull, h.histAtIncr)
	}
	for i := 1; i <= 3; i++ {
		pg.Exec(t, "INSERT INTO marks SELECT "+strconv.Itoa(i)+", g FROM generate_series(1, "+strconv.Itoa(batchRows)+") g")
		h.batchTimes = append(h.batchTimes, pg.QueryString(t, "now()"))
		switch i {
		case 1:
			pg.Exec(t, "SELECT pg_create_restore_point('after-batch-1')")
			h.xidOf1 = pg.QueryString(t, "SELECT max(x) FROM marks WHERE batch = 1")
		case 2:
			h.lsnAfter2 = pg.QueryString(t, "pg_current_wal_lsn()")
		}
		pg.Exec(t, "SELECT pg_switch_wal()")
	}
	pg.SwitchWALAndWaitArchived(t)
	return h
}

// marksSeen is "rows/max batch" of marks on a restored server.
func marksSeen(t *testing.T, port int) string {
	return query(t, port, "SELECT count(*) || '/' || coalesce(max(batch), 0) FROM marks")
}

func TestRestoreIntegration(t *testing.T) {
	r := testrepo.Local(t, packs4MiB)
	h := buildHistory(t, r)

	t.Run("PITR to a time between two batches gives exactly the rows committed before it", func(t *testing.T) {
		for i, want := range []string{"1000/1", "2000/2"} {
			opts := restoreOpts(t, r, h.archive)
			opts.Target = Target{Time: h.batchTimes[i], Inclusive: true}
			res := runRestore(t, opts)
			if res.BackupID != h.incr.ID {
				t.Errorf("picked backup %s, want the newest before the target, %s", res.BackupID, h.incr.ID)
			}
			if got := marksSeen(t, opts.Port); got != want {
				t.Fatalf("PITR to %s (after batch %d): marks rows/max batch = %s, want %s", h.batchTimes[i], i+1, got, want)
			}
			t.Logf("PITR to %s: %s rows/max batch, %d files, %d bytes written in %s, open after %s",
				h.batchTimes[i], want, res.Files, res.BytesWritten, res.Duration.Round(time.Millisecond), res.OpenAfter.Round(time.Millisecond))
		}
	})

	t.Run("restore point, LSN and xid targets stop where they should", func(t *testing.T) {
		cases := []struct {
			name   string
			target Target
			want   string
		}{
			{"restore point made after batch 1", Target{Name: "after-batch-1"}, "1000/1"},
			{"LSN taken after batch 2, inclusive", Target{LSN: h.lsnAfter2, Inclusive: true}, "2000/2"},
			{"xid of batch 1, inclusive", Target{XID: h.xidOf1, Inclusive: true}, "1000/1"},
			{"xid of batch 1, exclusive", Target{XID: h.xidOf1}, "0/0"},
		}
		for _, c := range cases {
			opts := restoreOpts(t, r, h.archive)
			opts.Target = c.target
			runRestore(t, opts)
			if got := marksSeen(t, opts.Port); got != c.want {
				t.Errorf("%s: marks rows/max batch = %s, want %s", c.name, got, c.want)
			}
		}
	})

	t.Run("pause action leaves the server paused at the target, shutdown action stops it", func(t *testing.T) {
		opts := restoreOpts(t, r, h.archive)
		opts.Target = Target{Time: h.batchTimes[0], Inclusive: true, Action: "pause"}
		runRestore(t, opts)
		if got := query(t, opts.Port, "SELECT pg_is_in_recovery() || '/' || pg_get_wal_replay_pause_state()"); got != "true/paused" {
			t.Errorf("in recovery/pause state = %s, want true/paused", got)
		}
		if got := marksSeen(t, opts.Port); got != "1000/1" {
			t.Errorf("paused at %s: marks rows/max batch = %s, want 1000/1", h.batchTimes[0], got)
		}
		opts = restoreOpts(t, r, h.archive)
		opts.Target = Target{Immediate: true, Action: "shutdown"}
		res := runRestore(t, opts)
		select {
		case <-res.Server.Done():
		default:
			t.Fatal("server still running after recovery_target_action = shutdown")
		}
		if !strings.Contains(res.Server.LogTail(4000), "shutdown at recovery target") {
			t.Errorf("log does not show a shutdown at the recovery target:\n%s", res.Server.LogTail(2000))
		}
	})

	t.Run("a server that refuses the recovery check's login fails fast and is stopped", func(t *testing.T) {
		opts := restoreOpts(t, r, h.archive)
		opts.Target, opts.User = Target{Immediate: true}, "no_such_role"
		// Waiting out OpenTimeout would end in "did not finish within"
		// instead: the error itself proves the wait ended at the refusal.
		_, err := Run(context.Background(), opts)
		if err == nil || !strings.Contains(err.Error(), "cannot watch recovery") {
			t.Fatalf("restore with a refused login: %v, want an error saying recovery cannot be watched", err)
		}
		if err := checkNotRunning(opts.TargetDir); err != nil {
			t.Errorf("the server was left running: %v", err)
		}
	})

	t.Run("the incremental restored alone opens with the data it saw", func(t *testing.T) {
		opts := restoreOpts(t, r, h.archive)
		opts.BackupID, opts.Target = h.incr.ID, Target{Immediate: true}
		res := runRestore(t, opts)
		if got := query(t, opts.Port, "SELECT count(*) FROM pgbench_history"); got != h.histAtIncr {
			t.Errorf("pgbench_history has %s rows, the primary had %s at the incremental", got, h.histAtIncr)
		}
		if got := query(t, opts.Port, "SELECT sum(abalance) FROM pgbench_accounts"); got != h.balanceAtIncr {
			t.Errorf("sum(abalance) = %s, the primary had %s at the incremental", got, h.balanceAtIncr)
		}
		if got := query(t, opts.Port, "SELECT count(*) FROM pgbench_accounts"); got != "200000" {
			t.Errorf("pgbench_accounts has %s rows, want 200000", got)
		}
		t.Logf("incremental %s alone: %d files, %d bytes, open after %s", res.BackupID, res.Files, res.BytesTotal, res.OpenAfter.Round(time.Millisecond))
	})

	t.Run("immediate restore of the full opens at the end of the backup, in new nested directories", func(t *testing.T) {
		opts := restoreOpts(t, r, h.archive)
		opts.BackupID, opts.Target = h.full.ID, Target{Immediate: true}
		// Directories restore creates must be reachable by the server account.
		opts.TargetDir = filepath.Join(filepath.Dir(opts.TargetDir), "new", "nested", "data")
		runRestore(t, opts)
		if got := query(t, opts.Port, "SELECT count(*) FROM pgbench_history"); got != h.histAtFull {
			t.Errorf("pgbench_history has %s rows, want %s (none of the later writes)", got, h.histAtFull)
		}
		if got := query(t, opts.Port, "SELECT pg_is_in_recovery()"); got != "false" {
			t.Errorf("pg_is_in_recovery = %s after promote", got)
		}
	})

	t.Run("delta restore over a diverged copy rewrites far less than the whole and gets the right rows", func(t *testing.T) {
		// Diverge: new rows and updates on the promoted copy.
		opts := divergedCopy(t, restoreOpts(t, r, h.archive), h.incr.ID,
			"INSERT INTO marks SELECT 99, g FROM generate_series(1, 5000) g",
			"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 3000")
		opts.BackupID, opts.Target = "", Target{Time: h.batchTimes[1], Inclusive: true}
		res := runRestore(t, opts)
		if got := marksSeen(t, opts.Port); got != "2000/2" {
			t.Errorf("after delta PITR: marks rows/max batch = %s, want 2000/2", got)
		}
		if got := query(t, opts.Port, "SELECT sum(abalance) FROM pgbench_accounts"); got != h.balanceAtIncr {
			t.Errorf("after delta: sum(abalance) = %s, want %s (the divergent updates undone)", got, h.balanceAtIncr)
		}
		if res.BytesWritten*4 > res.BytesTotal {
			t.Errorf("delta wrote %d of %d bytes: want well under a quarter", res.BytesWritten, res.BytesTotal)
		}
		if res.Unchanged == 0 || res.Removed == 0 {
			t.Errorf("delta left %d files unchanged and removed %d: want both above zero (stale WAL at least)", res.Unchanged, res.Removed)
		}
		t.Logf("delta: wrote %d of %d bytes (%.1f%%), fetched %d, %d of %d files unchanged, %d removed, %s",
			res.BytesWritten, res.BytesTotal, 100*float64(res.BytesWritten)/float64(res.BytesTotal), res.BytesFetched, res.Unchanged, res.Files, res.Removed, res.Duration.Round(time.Millisecond))
	})

	t.Run("delta restore over a copy whose big table was rewritten puts every page back", func(t *testing.T) {
		// Every row gets a new version: nearly every page of the table's
		// file differs from the backup's, and the file grows.
		opts := divergedCopy(t, restoreOpts(t, r, h.archive), h.incr.ID, "UPDATE pgbench_accounts SET abalance = abalance - 7")
		res := runRestore(t, opts)
		if got := query(t, opts.Port, "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts"); got != "200000 "+h.balanceAtIncr {
			t.Errorf("after delta: pgbench_accounts count and sum = %s, want 200000 %s", got, h.balanceAtIncr)
		}
		if got := query(t, opts.Port, "SELECT count(*) FROM pgbench_history"); got != h.histAtIncr {
			t.Errorf("after delta: pgbench_history has %s rows, want %s", got, h.histAtIncr)
		}
		// The table's file (about 26 MB of the 55) differs almost
		// everywhere; the catalogs do not.
		if res.BytesWritten < res.BytesTotal/4 || res.Unchanged == 0 {
			t.Errorf("delta wrote %d of %d bytes and left %d files unchanged: want the table's file rewritten (over a quarter) and untouched files left", res.BytesWritten, res.BytesTotal, res.Unchanged)
		}
		t.Logf("delta over the rewritten table: %d of %d files unchanged; wrote %d of %d bytes, fetched %d, %s",
			res.Unchanged, res.Files, res.BytesWritten, res.BytesTotal, res.BytesFetched, res.Duration.Round(time.Millisecond))
	})

	t.Run("an interrupted restore is refused without delta and resumed with it", func(t *testing.T) {
		opts := restoreOpts(t, r, h.archive)
		opts.BackupID, opts.Target = h.full.ID, Target{Immediate: true}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		written := 0
		opts.Progress = func(e Event) {
			if e.Phase == "files" {
				if written++; written == 50 {
					cancel()
				}
			}
		}
		_, err := Run(ctx, opts)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted restore returned %v, want context canceled", err)
		}
		if _, err := os.Stat(filepath.Join(opts.TargetDir, "global", "pg_control")); !os.IsNotExist(err) {
			t.Fatalf("an interrupted restore left global/pg_control (stat: %v): the directory could be started by mistake", err)
		}
		opts.Progress = nil
		refuseUnchanged(t, "rerun without delta", opts, "--delta")
		opts.Delta = true
		res := runRestore(t, opts)
		if res.Unchanged < 40 {
			t.Errorf("resume left %d files unchanged; at least the ~50 written before the interruption should be", res.Unchanged)
		}
		if got := query(t, opts.Port, "SELECT count(*) FROM pgbench_history"); got != h.histAtFull {
			t.Errorf("resumed restore: pgbench_history has %s rows, want %s", got, h.histAtFull)
		}
		t.Logf("resume: %d of %d files unchanged, wrote %d of %d bytes", res.Unchanged, res.Files, res.BytesWritten, res.BytesTotal)
	})

	t.Run("bad input is refused with a clear error and the directory is untouched", func(t *testing.T) {
		nonEmpty := filepath.Join(scratch(t), "busy")
		if err := os.MkdirAll(nonEmpty, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nonEmpty, "keep.txt"), []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		fresh := filepath.Join(scratch(t), "fresh")
		// The check is not over-eager: the full can reach a time after it.
		ok := restoreOpts(t, r, h.archive)
		ok.BackupID, ok.Target, ok.StopAfterOpen = h.full.ID, Target{Time: h.batchTimes[0], Inclusive: true}, true
		if res := runRestore(t, ok); res.BackupID != h.full.ID || res.Server != nil {
			t.Fatalf("restore of the named full to a later time: backup %s, server %v", res.BackupID, res.Server)
		}
		cases := []struct {
			name    string
			dir     string
			target  Target
			backup  string
			wantErr string
		}{
			{"two targets", fresh, Target{Time: h.batchTimes[0], Immediate: true}, "", "several recovery targets given (time, immediate)"},
			{"non-empty target directory", nonEmpty, Target{Immediate: true}, "", "is not empty"},
			{"unparsable time", fresh, Target{Time: "last tuesday"}, "", "target time \"last tuesday\""},
			{"time before any backup ends", fresh, Target{Time: h.full.StartTime.Add(-time.Hour).Format(time.RFC3339)}, "", "before every backup ends"},
			{"time before the named backup ends names the one to use", fresh, Target{Time: h.incr.StopTime.Add(-time.Millisecond).Format(time.RFC3339Nano)}, h.incr.ID, "use --backup " + h.full.ID},
			{"unknown backup", fresh, Target{Immediate: true}, "20200101T000000Z-deadbeef", "not in the repository"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				opts := restoreOpts(t, r, h.archive)
				opts.TargetDir, opts.Target, opts.BackupID = c.dir, c.target, c.backup
				t.Logf("refused: %v", refuseUnchanged(t, c.name, opts, c.wantErr))
			})
		}
	})
}

func TestRestoreFromS3(t *testing.T) {
	s3 := testcluster.StartS3(t)
	be, err := storage.Open(context.Background(), s3.URL("restore-test"), s3.Options())
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Init(t, be, testrepo.Passphrase, packs4MiB)
	pg, archive := testcluster.StartArchivingPostgres(t)
	pg.Pgbench(t, "-i", "-s", "1", "-q")
	pg.Exec(t, "CREATE TABLE marks (batch int, n int)")
	full := testrepo.Backup(t, r, pg, repo.KindFull)
	var times []string
	for i := 1; i <= 2; i++ {
		pg.Exec(t, "INSERT INTO marks SELECT "+strconv.Itoa(i)+", g FROM generate_series(1, "+strconv.Itoa(batchRows)+") g")
		times = append(times, pg.QueryString(t, "now()"))
		pg.Exec(t, "SELECT pg_switch_wal()")
	}
	pg.SwitchWALAndWaitArchived(t)
	opts := restoreOpts(t, r, archive)
	opts.Target = Target{Time: times[0], Inclusive: true}
	res := runRestore(t, opts)
	if res.BackupID != full.ID {
		t.Errorf("restored %s, want %s", res.BackupID, full.ID)
	}
	if got := marksSeen(t, opts.Port); got != "1000/1" {
		t.Fatalf("PITR from S3 to %s: marks rows/max batch = %s, want 1000/1", times[0], got)
	}
	t.Logf("PITR from S3: %d files, %d bytes in %s, open after %s", res.Files, res.BytesTotal, res.Duration.Round(time.Millisecond), res.OpenAfter.Round(time.Millisecond))
}

// execSQL runs a statement on a restored server.
func execSQL(t *testing.T, port int, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := connect(t, ctx, port)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("exec %q on restored server: %v", sql, err)
	}
}

// tablespaceBackup is an archiving primary with a table in tablespace ts
// (at tsDir, oid oid), backed up into r.
func tablespaceBackup(t *testing.T) (*repo.Repository, *testcluster.Postgres, string, string, string) {
	t.Helper()
	r := testrepo.Local(t, packs4MiB)
	pg, archive := testcluster.StartArchivingPostgres(t)
	tsDir := filepath.Join(scratch(t), "ts")
	if err := os.Mkdir(tsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := testcluster.Account(t).ChownTree(tsDir); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
	pg.Exec(t, "CREATE TABLE in_ts TABLESPACE ts AS SELECT g AS n FROM generate_series(1, 1000) g")
	oid := pg.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'ts'")
	testrepo.Backup(t, r, pg, repo.KindFull)
	pg.SwitchWALAndWaitArchived(t)
	return r, pg, archive, tsDir, oid
}

// remappedOpts are restoreOpts for the backup's end with tablespace oid
// remapped to a new directory, which it returns too.
func remappedOpts(t *testing.T, r *repo.Repository, archive, oid string) (Options, string) {
	t.Helper()
	opts := restoreOpts(t, r, archive)
	opts.Target = Target{Immediate: true}
	newTS := filepath.Join(scratch(t), "ts-copy")
	opts.Tablespaces = map[string]string{oid: newTS}
	return opts, newTS
}

// TestRestoreTablespaces: a tablespace in use is refused at its original
// location, restored beside it when remapped, and restored to its original
// location once that is free.
func TestRestoreTablespaces(t *testing.T) {
	r, pg, archive, tsDir, oid := tablespaceBackup(t)

	opts := restoreOpts(t, r, archive)
	opts.Target = Target{Immediate: true}
	refuseUnchanged(t, "restore while the original tablespace is in use", opts, "which is not empty")

	// Remapped, beside the running original.
	moved, newTS := remappedOpts(t, r, archive, oid)
	mres := runRestore(t, moved)
	if got := query(t, moved.Port, "SELECT count(*) FROM in_ts"); got != "1000" {
		t.Fatalf("table in the remapped tablespace has %s rows, want 1000", got)
	}
	if got := query(t, moved.Port, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'"); got != newTS {
		t.Errorf("restored server places tablespace ts at %s, want the remapped %s", got, newTS)
	}
	if got := pg.QueryString(t, "SELECT count(*) FROM in_ts"); got != "1000" {
		t.Errorf("the original's table now has %s rows: the remapped restore touched it", got)
	}
	t.Logf("remapped notes: %s", strings.Join(mres.Notes, "; "))

	// As on another host: the original is gone and its location is free.
	pg.Stop()
	if err := os.Rename(tsDir, tsDir+".orig"); err != nil {
		t.Fatal(err)
	}
	res := runRestore(t, opts)
	if got := query(t, opts.Port, "SELECT count(*) FROM in_ts"); got != "1000" {
		t.Fatalf("table in the restored tablespace has %s rows, want 1000", got)
	}
	if link, err := os.Readlink(filepath.Join(opts.TargetDir, "pg_tblspc", oid)); err != nil || link != tsDir {
		t.Errorf("pg_tblspc/%s -> %q (%v), want the original location %s", oid, link, err, tsDir)
	}
	if len(res.Notes) == 0 || !strings.Contains(strings.Join(res.Notes, "\n"), tsDir) {
		t.Errorf("notes %q do not say where the tablespace went", res.Notes)
	}
	t.Logf("notes: %s", strings.Join(res.Notes, "; "))
}

// Run as root, a restore never takes over a directory of someone else's:
// a tablespace remapped to a root-owned empty directory is refused and
// that directory is left as it was; and a delta restore whose target's
// pg_tblspc link was redirected to a root-owned directory deletes nothing
// there, replacing the link instead (issue 13 item 4).
func TestRootSafeTablespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it checks what a restore run as root does to directories it does not own")
	}
	r, _, archive, _, oid := tablespaceBackup(t)

	rootOwned := filepath.Join(scratch(t), "root-owned")
	if err := os.Mkdir(rootOwned, 0o755); err != nil {
		t.Fatal(err)
	}
	refused := restoreOpts(t, r, archive)
	refused.Target = Target{Immediate: true}
	refused.Tablespaces = map[string]string{oid: rootOwned}
	refuseUnchanged(t, "restore of a tablespace into a root-owned directory", refused, "owned by uid 0")
	if fi, err := os.Stat(rootOwned); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Mode().Perm() != 0o755 {
		t.Fatalf("the root-owned directory changed: %v %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(rootOwned); len(ents) != 0 {
		t.Fatalf("the refused restore wrote %d entries into the root-owned directory", len(ents))
	}

	// A restore remapped to a new directory, then its link redirected to a
	// root-owned directory holding a file; a delta restore must leave that
	// file alone and point the link back at the tablespace.
	done, _ := remappedOpts(t, r, archive, oid)
	done.Start = false
	runRestore(t, done)
	precious := filepath.Join(rootOwned, "precious")
	if err := os.WriteFile(precious, []byte("root's"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(done.TargetDir, "pg_tblspc", oid)
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rootOwned, link); err != nil {
		t.Fatal(err)
	}
	// The same tablespace location: it is no longer recognised as this
	// copy's own (the link points elsewhere), so the non-empty location
	// is refused; a new location goes through, replacing the link.
	done.Delta = true
	if _, err := Run(context.Background(), done); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("delta restore with a redirected link onto the old location: %v, want a refusal", err)
	}
	newTS := filepath.Join(scratch(t), "ts-copy2")
	done.Tablespaces = map[string]string{oid: newTS}
	runRestore(t, done)
	if b, err := os.ReadFile(precious); err != nil || string(b) != "root's" {
		t.Fatalf("the delta restore deleted or changed a file through a redirected link: %q %v", b, err)
	}
	if fi, err := os.Stat(precious); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("the delta restore handed root's file to the database account: %v", err)
	}
	if cur, err := os.Readlink(link); err != nil || cur != newTS {
		t.Fatalf("pg_tblspc/%s -> %q (%v) after the delta, want %s", oid, cur, err, newTS)
	}
}

// divergedCopy restores backup id at its end with opts, runs sqls and a
// checkpoint on the promoted copy, stops it, and returns opts for a delta
// restore over it (same target, a new port).
func divergedCopy(t *testing.T, opts Options, id string, sqls ...string) Options {
	t.Helper()
	opts.BackupID, opts.Target = id, Target{Immediate: true}
	first := runRestore(t, opts)
	for _, q := range append(sqls, "CHECKPOINT") {
		execSQL(t, opts.Port, q)
	}
	if err := first.Server.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	opts.Delta, opts.Port = true, testcluster.FreePort(t)
	return opts
}
