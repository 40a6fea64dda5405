package backup_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/testcluster"
)

const fingerprintSQL = `SELECT format('accounts=%s balance=%s history=%s',
	(SELECT count(*) FROM pgbench_accounts), (SELECT sum(abalance) FROM pgbench_accounts),
	(SELECT count(*) FROM pgbench_history))`

// TestFullThenIncrementalOnPgbench runs the whole cycle through the CLI
// with archive_command = pgguard wal-push: an incr on an empty repository
// becomes a full, a light load later the incr stores a small fraction, the
// listing shows both, verify passes, and the incremental alone (no chain)
// restores through wal-fetch to exactly the primary's data; then one
// flipped byte in a pack is named by verify.
func TestFullThenIncrementalOnPgbench(t *testing.T) {
	e, pg := newRepoEnv(t, nil)
	pg.Pgbench(t, "-i", "-s", "5", "-q")

	full := e.backup("incr")
	if full.Kind != "full" || !strings.Contains(full.Note, "full backup instead of an incremental") {
		t.Errorf("first incr: kind %s note %q, want a full and a note saying so", full.Kind, full.Note)
	}
	if full.StoredSize <= 0 || full.BytesRead < 50<<20 {
		t.Fatalf("full backup read %d and stored %d bytes; want the whole ~80 MB database", full.BytesRead, full.StoredSize)
	}

	// A light load in proportion to the benchmark's (3000 transactions on
	// scale 100): about 1% of the accounts pages change.
	pg.Pgbench(t, "-c", "2", "-t", "50", "-n")
	pg.SwitchWALAndWaitArchived(t)
	incr := e.backup("incr")
	if incr.Kind != "incr" {
		t.Fatalf("second backup kind %s, want incr", incr.Kind)
	}
	if incr.StoredSize*10 > full.StoredSize {
		t.Errorf("incremental stored %d bytes, more than 1/10 of the full's %d", incr.StoredSize, full.StoredSize)
	}
	if incr.BytesRead*4 > full.BytesRead {
		t.Errorf("incremental read %d bytes of the data directory, the full read %d; want far less", incr.BytesRead, full.BytesRead)
	}
	t.Logf("full: read %d stored %d; incr: read %d stored %d (%.1f%% of full stored)",
		full.BytesRead, full.StoredSize, incr.BytesRead, incr.StoredSize, 100*float64(incr.StoredSize)/float64(full.StoredSize))

	list := e.ok("backups", "-o", "json")
	var sums []struct {
		ID, Kind string
	}
	if err := json.Unmarshal([]byte(list.stdout), &sums); err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 || sums[0].ID != full.ID || sums[1].ID != incr.ID || sums[1].Kind != "incr" {
		t.Errorf("backups lists %+v, want %s (full) then %s (incr)", sums, full.ID, incr.ID)
	}
	e.ok("verify", "--all")

	// More writes after the incremental, all archived: the restore must
	// replay them from the archive through wal-fetch.
	pg.Pgbench(t, "-c", "2", "-t", "200", "-n")
	want := pg.QueryString(t, fingerprintSQL)
	pg.SwitchWALAndWaitArchived(t)

	r, m := e.manifest(incr.ID)
	if m.File("backup_label") == nil || m.File("pg_wal") == nil || m.File("global/pg_control") == nil {
		t.Fatalf("incremental manifest lacks backup_label, pg_wal or global/pg_control: not complete")
	}
	restored := e.startRestored("restored incremental", r, m, nil)
	if got := restored.QueryString(t, fingerprintSQL); got != want {
		t.Errorf("restored incremental (no chain) has %s, primary had %s", got, want)
	}

	// One flipped byte in the middle of a pack: verify names the backup and
	// the file, and exits non-zero.
	packs := filepath.Join(strings.TrimPrefix(e.repoURL, "file://"), "packs")
	var victim string
	var victimSize int64
	filepath.Walk(packs, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > victimSize {
			victim, victimSize = p, fi.Size()
		}
		return nil
	})
	flipByte(t, victim, victimSize/2)
	res := e.run(nil, "verify", "--backup", full.ID, "-c", e.cfgPath)
	if res.code != 1 || !strings.Contains(res.stdout, "backup "+full.ID+", file ") {
		t.Fatalf("verify after a flipped byte in %s: exit %d, stdout %q, stderr %q; want exit 1 naming backup %s and a file",
			filepath.Base(victim), res.code, lastLines(res.stdout, 5), lastLines(res.stderr, 5), full.ID)
	}
	t.Logf("verify reported: %s", lastLines(res.stdout, 1))
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xFF
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestWrongKeyIsClearAndWritesNothing: a repository initialised under one
// passphrase refuses another with exit 2 and a message naming the cause,
// and no object is added or changed.
func TestWrongKeyIsClearAndWritesNothing(t *testing.T) {
	e := newEnv(t, nil)
	repoDir := filepath.Join(e.dir, "repo")
	e.writeConfig("/nonexistent", 5432)
	loc := "file://" + repoDir
	if res := e.run([]string{"PGGUARD_PASSPHRASE=correct horse battery"}, "repo", "init", "--repo", loc); res.code != 0 {
		t.Fatalf("repo init: exit %d: %s", res.code, res.stderr)
	}
	before := tree(t, repoDir)
	for _, args := range [][]string{
		{"backups", "--repo", loc},
		{"backup", "full", "--repo", loc, "--pg", "host=127.0.0.1 port=1 user=postgres"},
		{"verify", "--all", "--repo", loc},
		{"prune", "--keep", "1", "--repo", loc},
	} {
		res := e.run([]string{"PGGUARD_PASSPHRASE=wrong horse battery"}, args...)
		if res.code != 2 || !strings.Contains(res.stderr, "does not open it (wrong key?)") {
			t.Errorf("pgguard %s with a wrong passphrase: exit %d, stderr %q; want exit 2 and a clear message", strings.Join(args, " "), res.code, res.stderr)
		}
		if strings.Contains(res.stderr, "wrong horse battery") {
			t.Errorf("pgguard %s printed the passphrase: %q", args[0], res.stderr)
		}
	}
	res := e.run(nil, "backups", "--repo", loc)
	if res.code != 2 || !strings.Contains(res.stderr, "PGGUARD_PASSPHRASE") {
		t.Errorf("no passphrase: exit %d, stderr %q; want exit 2 naming PGGUARD_PASSPHRASE", res.code, res.stderr)
	}
	if after := tree(t, repoDir); after != before {
		t.Errorf("repository changed by failed commands:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	res = e.run([]string{"PGGUARD_PASSPHRASE=another long passphrase"}, "repo", "init", "--repo", loc)
	if res.code == 0 || !strings.Contains(res.stderr, "not empty") {
		t.Errorf("repo init on a used location: exit %d, stderr %q; want a refusal saying it is not empty", res.code, res.stderr)
	}
}

// tree lists every file with size and modification time.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			b.WriteString(strings.TrimPrefix(p, root) + " " + fi.ModTime().String() + "\n")
		}
		return nil
	})
	return b.String()
}

// TestBackupToS3 runs full and incremental backups and WAL archiving
// against a real S3 server and restores the incremental.
func TestBackupToS3(t *testing.T) {
	s3 := testcluster.StartS3(t)
	e, pg := newRepoEnv(t, s3)
	pg.Pgbench(t, "-i", "-s", "2", "-q")
	full := e.backup("full")
	pg.Pgbench(t, "-c", "2", "-t", "20", "-n")
	incr := e.backup("incr")
	if full.Kind != "full" || incr.Kind != "incr" || incr.StoredSize*5 > full.StoredSize {
		t.Errorf("S3: full %s stored %d, incr %s stored %d; want a much smaller incr", full.Kind, full.StoredSize, incr.Kind, incr.StoredSize)
	}
	e.ok("verify", "--all")
	want := pg.QueryString(t, fingerprintSQL)
	pg.SwitchWALAndWaitArchived(t)
	r, m := e.manifest(incr.ID)
	restored := e.startRestored("restored S3 incremental", r, m, nil)
	if got := restored.QueryString(t, fingerprintSQL); got != want {
		t.Errorf("restored from S3: %s, primary had %s", got, want)
	}
}

var _ = repo.KindFull
