package pg_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// TestTimelinePlaceholdersNeverBecomeARecoveryTarget builds chaos finding
// 20 with plain PostgreSQL servers: a standby T streams timeline 2 of S
// (promoted from P's timeline 1) when its agent reserves timelines 3 and 4
// for a promotion that never happens (the node is killed first). Started
// again in recovery with those placeholders in pg_wal, PostgreSQL takes
// the newest for its target timeline and never becomes a standby of S
// again; with them removed, as every start of pgguard's does, it does.
// Then T is promoted past its placeholders, and they must stay: a standby
// U of timeline 2 that follows T fetches from it the history file of
// every timeline in between.
func TestTimelinePlaceholdersNeverBecomeARecoveryTarget(t *testing.T) {
	p := testcluster.StartPostgres(t, testcluster.PGOptions{})
	p.Exec(t, "CREATE TABLE t (id int)")
	s := standbyOf(t, p)
	tt := standbyOf(t, p)
	p.Exec(t, "INSERT INTO t VALUES (1)")
	waitRows(t, s, 1)
	waitRows(t, tt, 1)
	s.Exec(t, "SELECT pg_promote()")
	sc := s.Connect(t)
	testcluster.WaitUntil(t, 30*time.Second, "S out of recovery", func() (bool, string) {
		var rec bool
		err := sc.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&rec)
		return err == nil && !rec, fmt.Sprintf("in recovery %v, err %v", rec, err)
	})
	s.Exec(t, "INSERT INTO t VALUES (2)")
	repoint(t, tt, s)
	waitRows(t, tt, 2)

	i := pg.New(pg.Options{DataDir: tt.DataDir(), Account: tt.Account()})
	if err := i.SkipTimelines(2, 4); err != nil {
		t.Fatal(err)
	}
	wal := filepath.Join(tt.DataDir(), "pg_wal")
	two, err := os.ReadFile(filepath.Join(wal, "00000002.history"))
	if err != nil {
		t.Fatalf("T streamed timeline 2 but has no history file for it: %v", err)
	}
	four, err := os.ReadFile(filepath.Join(wal, "00000004.history"))
	if err != nil || !strings.HasPrefix(string(four), string(two)) || !pg.IsTimelinePlaceholder(four) {
		t.Fatalf("placeholder of timeline 4: %q (err %v), want timeline 2's history %q and the placeholder mark", four, err, two)
	}
	if pg.IsTimelinePlaceholder(two) {
		t.Fatal("timeline 2's real history reads as a placeholder")
	}
	tt.Stop()

	// What the chaos trial saw: PostgreSQL started with the placeholders
	// follows the newest, on which it never becomes a standby of S.
	if log, ok := startsAsStandby(t, tt, 20*time.Second); ok {
		t.Fatalf("T started as a standby with placeholders in pg_wal; the test no longer shows the hazard it guards against:\n%s", lastLines(log, 10))
	} else {
		t.Logf("with the placeholders, T: %s", lastLines(log, 6))
	}

	removed, err := i.RemoveTimelinePlaceholders()
	if err != nil || !reflect.DeepEqual(removed, []string{"00000003.history", "00000004.history"}) {
		t.Fatalf("removed %v (err %v), want the placeholders of timelines 3 and 4", removed, err)
	}
	if _, err := os.Stat(filepath.Join(wal, "00000002.history")); err != nil {
		t.Fatalf("timeline 2's history went with the placeholders: %v", err)
	}
	// S checkpoints past the segment T will ask for again, as the base
	// backup of U below does at a moment that races T's restart (the CI
	// failure of 2026-12-05): standbyOf's wal_keep_size must keep it.
	for range 2 {
		s.Exec(t, "SELECT pg_switch_wal()")
		s.Exec(t, "CHECKPOINT")
	}
	tt.Start()
	u := standbyOf(t, s)
	s.Exec(t, "INSERT INTO t VALUES (3)")
	waitRows(t, tt, 3)
	waitRows(t, u, 3)

	// S stops: both standbys receive its WAL to the shutdown checkpoint,
	// where T's new timeline will start.
	s.Stop()
	if err := i.SkipTimelines(2, 4); err != nil {
		t.Fatal(err)
	}
	tt.Exec(t, "SELECT pg_promote()")
	tc := tt.Connect(t)
	testcluster.WaitUntil(t, 30*time.Second, "T on timeline 5", func() (bool, string) {
		var wal string
		err := tc.QueryRow(context.Background(), "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&wal)
		return err == nil && strings.HasPrefix(wal, "00000005"), fmt.Sprintf("current WAL file %q, err %v", wal, err)
	})
	if removed, err := i.RemoveTimelinePlaceholders(); err != nil || len(removed) > 0 {
		t.Fatalf("removed %v (err %v) after T's promotion onto timeline 5; want the placeholders below it kept", removed, err)
	}
	tt.Exec(t, "INSERT INTO t VALUES (4)")
	repoint(t, u, tt)
	waitRows(t, u, 4)
}

// startsAsStandby runs the stopped server p for up to wait and reports
// whether it accepted connections in recovery, with its log.
func startsAsStandby(t *testing.T, p *testcluster.Postgres, wait time.Duration) (string, bool) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if err := os.Chown(logPath, p.Account().UID, p.Account().GID); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "postgres"), "-D", p.DataDir(), "-p", strconv.Itoa(p.Port()),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=")
	p.Account().Apply(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
		testcluster.RemoveSharedMemory(p.DataDir())
	}()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			data, _ := os.ReadFile(logPath)
			return string(data), false
		case <-time.After(200 * time.Millisecond): // poll interval
		}
		if out, err := exec.Command(filepath.Join(testcluster.PGBinDir, "psql"), "-X", "-A", "-t", "-d", p.ConnString(),
			"-c", "SELECT pg_is_in_recovery()").Output(); err == nil && strings.TrimSpace(string(out)) == "t" {
			data, _ := os.ReadFile(logPath)
			return string(data), true
		}
	}
	data, _ := os.ReadFile(logPath)
	return string(data), false
}
