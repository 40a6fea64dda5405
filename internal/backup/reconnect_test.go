package backup_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// BK-9: a backup that loses its S3 repository for 20 s waits for it (within
// the reconnect timeout), then continues where it was and succeeds.
func TestBackupRidesOutATwentySecondS3Outage(t *testing.T) {
	s3 := testcluster.StartS3(t)
	e, pg := newRepoEnv(t, s3)
	// Sent at 2 MiB/s: the backup is still uploading when the server goes
	// away.
	bk := e.startSlowBackup(pg, "--rate-limit", "2MiB", "--reconnect-timeout", "2m")
	var stopped, restarted time.Time
	bk.through(t, "20 s outage", func() {
		// The outage starts once a pack of the backup has reached the
		// server, not at a fixed time: the backup still has packs, its
		// index and its manifest to store, so it must meet the outage
		// however fast or slow the machine is (a slow one once had the
		// backup read everything before its first upload).
		testcluster.WaitUntil(t, 2*time.Minute, "a pack of the backup on the S3 server", func() (bool, string) {
			n := len(s3.Objects("/packs/"))
			return n > 0, fmt.Sprintf("%d packs stored", n)
		})
		s3.Stop()
		stopped = time.Now()
		time.Sleep(20 * time.Second) // fault schedule: the outage under test
		s3.Start()
		restarted = time.Now()
	})
	errb := &bk.errb
	// The outage was met, not missed: the backup said it kept retrying,
	// and it ended only after the server was back.
	if !strings.Contains(errb.String(), "unreachable") || !strings.Contains(errb.String(), "retrying in") {
		t.Fatalf("the backup never reported the outage; stderr:\n%s", lastLines(errb.String(), 20))
	}
	if bk.endedAt.Before(restarted) {
		t.Fatalf("the backup ended %s after the outage began, before the server came back: it never met the outage", bk.endedAt.Sub(stopped))
	}
	t.Logf("backup finished %s after the S3 server stopped for 20 s", time.Since(stopped).Round(time.Second))
	e.ok("verify", "--all")
}

// BK-9: a backup whose database restarts under it waits for the database
// (within the reconnect timeout), takes the backup again reusing what the
// lost attempt stored, and succeeds.
func TestBackupRidesOutADatabaseRestart(t *testing.T) {
	e, pg := newRepoEnv(t, nil)
	// Read at 4 MiB/s: the backup is still reading when the server goes.
	bk := e.startSlowBackup(pg, "--read-limit", "4MiB", "--reconnect-timeout", "1m")
	bk.through(t, "database restart", func() {
		pg.Stop()
		time.Sleep(5 * time.Second) // fault schedule: a 5 s outage
		pg.Start()
	})
	out, errb := &bk.out, &bk.errb
	var rep struct {
		Attempts    int   `json:"attempts"`
		PacksReused int   `json:"packs_reused"`
		StoredSize  int64 `json:"stored_size"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("backup output: %v\n%s", err, out.String())
	}
	if rep.Attempts != 2 {
		t.Fatalf("attempts = %d, want 2 (one lost with the database, one after it came back)\n%s", rep.Attempts, lastLines(errb.String(), 20))
	}
	if !strings.Contains(errb.String(), "database-lost") {
		t.Fatalf("the lost database is not reported:\n%s", lastLines(errb.String(), 20))
	}
	// About 24 MiB of incompressible rows: the lost attempt stored them,
	// the second must not store them again.
	if rep.StoredSize > 8<<20 {
		t.Fatalf("the second attempt stored %d bytes: the lost attempt's blocks were not reused", rep.StoredSize)
	}
	t.Logf("succeeded in %d attempts; the second stored only %d bytes (%d unindexed packs of the lost attempt indexed)", rep.Attempts, rep.StoredSize, rep.PacksReused)
	e.ok("verify", "--all")
}

// slowBackup is a full backup running in the background, slowed by limits
// so that it is still running when a test's fault strikes.
type slowBackup struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan error
	endedAt   time.Time // set before done receives
}

// startSlowBackup writes about 24 MiB of incompressible rows and starts a
// full backup of them with the extra flags (the limits and the reconnect
// timeout).
func (e *env) startSlowBackup(pg *testcluster.Postgres, flags ...string) *slowBackup {
	e.t.Helper()
	pg.Exec(e.t, `CREATE TABLE noise AS SELECT g AS id, decode(string_agg(md5(random()::text), ''), 'hex') AS b
		FROM generate_series(1, 12000) g, generate_series(1, 128) h GROUP BY g`)
	b := &slowBackup{done: make(chan error, 1)}
	b.cmd = exec.Command(e.bin, append([]string{"backup", "full", "-c", e.cfgPath, "-o", "json"}, flags...)...)
	e.acct.Apply(b.cmd)
	b.cmd.Dir, b.cmd.Env = e.dir, filteredEnv()
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.errb
	if err := b.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { err := b.cmd.Wait(); b.endedAt = time.Now(); b.done <- err }()
	return b
}

// through lets the backup get going, fails if it has already ended (the
// fault would miss it), runs fault, and waits three minutes at most for
// the backup to succeed.
func (b *slowBackup) through(t *testing.T, fault string, run func()) {
	t.Helper()
	time.Sleep(3 * time.Second) // fault schedule: let the backup get going
	select {
	case err := <-b.done:
		t.Fatalf("backup ended before the %s (%v): make it longer\n%s", fault, err, b.errb.String())
	default:
	}
	run()
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("backup failed across a %s: %v\nstderr:\n%s", fault, err, lastLines(b.errb.String(), 20))
		}
	case <-time.After(3 * time.Minute):
		_ = b.cmd.Process.Kill()
		t.Fatalf("backup did not finish within 3 minutes after the %s\n%s", fault, lastLines(b.errb.String(), 20))
	}
}
