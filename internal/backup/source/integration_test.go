package source

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// scratch is a directory the PostgreSQL account can use, removed at cleanup.
func scratch(t *testing.T) string { return testcluster.Scratch(t, "pgguard-source-") }

func startPrimary(t *testing.T) *testcluster.Postgres {
	return testcluster.StartPostgres(t, testcluster.PGOptions{Conf: []string{
		"wal_keep_size = '2GB'", "max_wal_size = '2GB'", "checkpoint_timeout = '30min'",
	}})
}

type backupRun struct {
	b     *Backup
	stop  StopResult
	sink  *dirSink
	stats Stats
}

// runBackup takes a backup of pg into a new dirSink, calling during between
// start and read so that the data changes under the backup.
func runBackup(t *testing.T, pg *testcluster.Postgres, prev *Previous, prevDir, walDir string, during func()) backupRun {
	t.Helper()
	return runBackupWith(t, pg, StartOptions{Fast: true}, prev, prevDir, walDir, during)
}

func runBackupWith(t *testing.T, pg *testcluster.Postgres, so StartOptions, prev *Previous, prevDir, walDir string, during func()) backupRun {
	t.Helper()
	ctx := context.Background()
	conn := pg.Connect(t)
	b, err := Start(ctx, conn, "test backup", so)
	if err != nil {
		t.Fatalf("start backup: %v", err)
	}
	if during != nil {
		during()
	}
	sink := newDirSink(filepath.Join(scratch(t), "data"), prevDir, filepath.Join(scratch(t), "ts"))
	opts := b.Options(4)
	opts.ChunkSize = 256 << 10
	opts.Previous = prev
	opts.WALDir = walDir
	st, err := Read(ctx, opts, sink)
	if err != nil {
		t.Fatalf("read backup: %v", err)
	}
	stop, err := b.Stop(ctx)
	if err != nil {
		t.Fatalf("stop backup: %v", err)
	}
	if stop.StopLSN < b.StartLSN || stop.Timeline != 1 || b.SystemID == 0 {
		t.Fatalf("implausible backup: start %s stop %s timeline %d system %d", b.StartLSN, stop.StopLSN, stop.Timeline, b.SystemID)
	}
	return backupRun{b: b, stop: stop, sink: sink, stats: st}
}

// archiveWAL copies the primary's WAL segments into a new archive directory.
func archiveWAL(t *testing.T, pg *testcluster.Postgres) string {
	t.Helper()
	dir := filepath.Join(scratch(t), "archive")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	seg := regexp.MustCompile(`^[0-9A-F]{24}$|\.history$`)
	ents, err := os.ReadDir(filepath.Join(pg.DataDir(), "pg_wal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if seg.MatchString(e.Name()) {
			if err := copyFile(filepath.Join(pg.DataDir(), "pg_wal", e.Name()), filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pg.Account().ChownTree(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

const fingerprintSQL = `SELECT format('accounts=%s balance=%s history=%s',
	(SELECT count(*) FROM pgbench_accounts), (SELECT sum(abalance) FROM pgbench_accounts),
	(SELECT count(*) FROM pgbench_history))`

// restoreAndCheck starts the restored directory, waits for recovery to end
// and compares fingerprint query results with the primary's.
func restoreAndCheck(t *testing.T, pg *testcluster.Postgres, run backupRun, archive string, queries ...string) {
	t.Helper()
	want := make([]string, len(queries))
	for i, q := range queries {
		want[i] = pg.QueryString(t, q)
	}
	run.sink.finishRestore(t, run.stop, archive)
	if err := os.MkdirAll(run.sink.tsRoot, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pg.Account().ChownTree(run.sink.tsRoot); err != nil {
		t.Fatal(err)
	}
	restored := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: run.sink.dir})
	testcluster.WaitUntil(t, 2*time.Minute, "restored server leaves recovery", func() (bool, string) {
		s := restored.QueryString(t, "SELECT pg_is_in_recovery()")
		return s == "false", "pg_is_in_recovery=" + s
	})
	for i, q := range queries {
		if got := restored.QueryString(t, q); got != want[i] {
			t.Errorf("restored %q = %s, primary has %s", q, got, want[i])
		}
	}
}

// pgbenchAsync runs pgbench in the background; the channel yields its result.
func pgbenchAsync(pg *testcluster.Postgres, args ...string) <-chan error {
	ch := make(chan error, 1)
	full := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port()), "-U", "postgres"}, args...)
	cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "pgbench"), append(full, "postgres")...)
	pg.Account().Apply(cmd)
	cmd.Dir = os.TempDir()
	go func() {
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("pgbench: %w\n%s", err, out)
		}
		ch <- err
	}()
	return ch
}

func TestPageChecksumMatchesServerPages(t *testing.T) {
	pg := startPrimary(t)
	pg.Exec(t, `CREATE TABLE t AS SELECT i, md5(i::text) AS s FROM generate_series(1, 20000) i;
		CREATE INDEX ON t (s); CHECKPOINT`)
	for _, rel := range []string{"t", "t_s_idx"} {
		path := pg.QueryString(t, fmt.Sprintf("pg_relation_filepath('%s')", rel))
		data, err := os.ReadFile(filepath.Join(pg.DataDir(), path))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for blk := 0; blk*PageSize < len(data); blk++ {
			page := data[blk*PageSize : (blk+1)*PageSize]
			if pageIsNew(page) {
				continue
			}
			checked++
			if got, want := PageChecksum(page, uint32(blk)), binary.LittleEndian.Uint16(page[8:]); got != want {
				t.Errorf("%s block %d: computed %#04x, server wrote %#04x", path, blk, got, want)
			}
		}
		if checked < 10 {
			t.Errorf("%s: only %d pages checked, want a real multi-page relation", path, checked)
		}
	}
	// A crashed server comes back with its pages intact (and the helper can
	// restart a killed postmaster).
	pg.Kill()
	pg.Start()
	if got := pg.QueryString(t, "SELECT count(*) FROM t"); got != "20000" {
		t.Errorf("after crash restart count = %s, want 20000", got)
	}
}

func TestFullBackupWithConcurrentWritesRestores(t *testing.T) {
	pg := startPrimary(t)
	tsDir := filepath.Join(scratch(t), "tablespace")
	if err := pg.Account().MkdirAll(tsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pg.Pgbench(t, "-i", "-s", "2", "-q")
	pg.Exec(t, fmt.Sprintf(`CREATE TABLESPACE ts LOCATION '%s'`, tsDir))
	pg.Exec(t, `CREATE TABLE tt TABLESPACE ts AS SELECT generate_series(1, 5000) AS i`)
	var bench <-chan error
	run := runBackup(t, pg, nil, "", "", func() {
		bench = pgbenchAsync(pg, "-c", "2", "-t", "300", "-n")
	})
	if err := <-bench; err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, `INSERT INTO tt SELECT generate_series(5001, 6000)`)
	st := run.stats
	if len(st.BadPages) != 0 || st.PagesChecked == 0 || st.WALMapUsed || st.BytesRead == 0 {
		t.Fatalf("full backup stats %+v", st)
	}
	if len(run.stop.TablespaceMap) == 0 {
		t.Error("backup of a cluster with a tablespace returned no tablespace_map")
	}
	if _, err := os.Stat(filepath.Join(run.sink.dir, "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("postmaster.pid was copied (stat err %v)", err)
	}
	archive := archiveWAL(t, pg)
	restoreAndCheck(t, pg, run, archive, fingerprintSQL, "SELECT count(*) FROM tt")
}

func TestIncrementalReadsOnlyChangedData(t *testing.T) {
	pg := startPrimary(t)
	pg.Pgbench(t, "-i", "-s", "10", "-q")
	full := runBackup(t, pg, nil, "", "", nil)
	pg.Pgbench(t, "-c", "2", "-t", "200", "-n")

	t.Run("wal block map reads a fraction and reconstructs the data", func(t *testing.T) {
		inc := runBackup(t, pg, full.sink.previous(full.b), full.sink.dir, "", nil)
		st := inc.stats
		if !st.WALMapUsed || st.WALMapFallback != "" || st.WALMapBlocks == 0 {
			t.Fatalf("WAL block map not used: %+v", st)
		}
		if st.BytesRead*5 >= inc.sink.relSize {
			t.Errorf("incremental read %d bytes, not under 20%% of %d relation bytes; actions %v", st.BytesRead, inc.sink.relSize, inc.sink.actions)
		}
		if inc.sink.actions[ActionFromPrevious] == 0 || inc.sink.actions[ActionReadBlocks] == 0 {
			t.Errorf("actions %v: want files both taken from previous and read by block", inc.sink.actions)
		}
		t.Logf("incremental: read %d of %d relation bytes, %d WAL blocks, actions %v", st.BytesRead, inc.sink.relSize, st.WALMapBlocks, inc.sink.actions)
		restoreAndCheck(t, pg, inc, archiveWAL(t, pg), fingerprintSQL)
	})
	t.Run("without the WAL it scans page LSNs, passes little and reconstructs the data", func(t *testing.T) {
		empty := scratch(t)
		inc := runBackup(t, pg, full.sink.previous(full.b), full.sink.dir, empty, nil)
		st := inc.stats
		if st.WALMapUsed || st.WALMapFallback == "" {
			t.Fatalf("expected a fallback reason, stats %+v", st)
		}
		if st.BytesSent*5 >= inc.sink.relSize {
			t.Errorf("page LSN scan passed %d bytes, not under 20%% of %d relation bytes", st.BytesSent, inc.sink.relSize)
		}
		t.Logf("fallback: %s; read %d, sent %d of %d relation bytes", st.WALMapFallback, st.BytesRead, st.BytesSent, inc.sink.relSize)
		restoreAndCheck(t, pg, inc, archiveWAL(t, pg), fingerprintSQL)
	})
}

func TestCorruptedPageIsReportedWithFileAndBlock(t *testing.T) {
	pg := startPrimary(t)
	pg.Exec(t, `CREATE TABLE c AS SELECT i, repeat('x', 100) AS pad FROM generate_series(1, 3000) i; CHECKPOINT`)
	rel := pg.QueryString(t, "pg_relation_filepath('c')")
	pg.Stop()
	path := filepath.Join(pg.DataDir(), rel)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	const blk = 2
	page := make([]byte, PageSize)
	if _, err := f.ReadAt(page, blk*PageSize); err != nil {
		t.Fatal(err)
	}
	page[PageSize-200] ^= 0x5A
	if _, err := f.WriteAt(page, blk*PageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pg.Start()

	run := runBackup(t, pg, nil, "", "", nil)
	want := BadPage{Path: rel, Block: blk, Expected: PageChecksum(page, blk), Found: binary.LittleEndian.Uint16(page[8:])}
	if len(run.stats.BadPages) != 1 || run.stats.BadPages[0] != want {
		t.Fatalf("bad pages %v, want exactly [%v]", run.stats.BadPages, want)
	}
}

func TestBackupFromStandbyRestores(t *testing.T) {
	primary := startPrimary(t)
	primary.Pgbench(t, "-i", "-s", "2", "-q")
	standbyDir := filepath.Join(scratch(t), "standby")
	cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "pg_basebackup"), "-h", "127.0.0.1",
		"-p", strconv.Itoa(primary.Port()), "-U", "postgres", "-D", standbyDir, "-R", "-X", "stream", "-c", "fast")
	primary.Account().Apply(cmd)
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	standby := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: standbyDir})

	ctx := context.Background()
	if _, err := Start(ctx, standby.Connect(t), "wrong role", StartOptions{}); err == nil || !strings.Contains(err.Error(), "--from-standby") {
		t.Fatalf("backup of a standby without FromStandby: err %v, want advice to use --from-standby", err)
	}
	if _, err := Start(ctx, primary.Connect(t), "wrong role", StartOptions{FromStandby: true}); err == nil || !strings.Contains(err.Error(), "not in recovery") {
		t.Fatalf("FromStandby against a primary: err %v, want a refusal", err)
	}

	var bench <-chan error
	run := runBackupWith(t, standby, StartOptions{Fast: true, FromStandby: true}, nil, "", "", func() {
		bench = pgbenchAsync(primary, "-c", "2", "-t", "200", "-n")
	})
	if err := <-bench; err != nil {
		t.Fatal(err)
	}
	if li, err := ParseBackupLabel(string(run.stop.BackupLabel)); err != nil || li.FromRole != "standby" {
		t.Fatalf("backup_label %q (err %v): want BACKUP FROM: standby", run.stop.BackupLabel, err)
	}
	if len(run.stats.BadPages) != 0 || run.stats.PagesChecked == 0 {
		t.Fatalf("standby backup stats %+v", run.stats)
	}
	restoreAndCheck(t, primary, run, archiveWAL(t, primary), fingerprintSQL)
}
