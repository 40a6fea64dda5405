package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// docs/RECOVER-FROM-A-MISTAKE.md's DROP TABLE recipe, performed: the
// delayed standby is held before the mistake and stopped, a copy of its
// data directory is promoted at the hold point on the side (the DROP,
// never committed there, is rolled back), and pg_dump carries the table
// back to the primary, which kept taking writes throughout (HA-13, issue
// 14 item 8). Then the standby starts again, still held, and the hold is
// withdrawn.
func TestRecoverADroppedTableFromADelayedStandby(t *testing.T) {
	const delayed = "n3"
	c, leader := startDelayedCluster(t, delayed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Each statement on a fresh connection to the leader, retried on a
	// connection error: a loaded machine can stall the store long enough
	// for the primary to fence and restart in place (seen in CI), which
	// ends every connection it had.
	onPrimary := func(sql string) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			var conn *pgx.Conn
			if conn, err = pgx.Connect(ctx, c.NodeDSN(c.Leader())); err == nil {
				_, err = conn.Exec(ctx, sql)
				conn.Close(ctx)
				if err == nil || !pgconn.SafeToRetry(err) && !strings.Contains(err.Error(), "conn closed") {
					break
				}
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	onPrimary(`CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app."Precious Orders" AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g`)
	count := func(dsn string) (int, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, `SELECT count(*) FROM app."Precious Orders"`).Scan(&n)
		return n, err
	}
	c.WaitFor("the table on the delayed standby", 60*time.Second, func(status.Report) bool {
		n, err := count(c.NodeDSN(delayed))
		return err == nil && n == 1000
	})
	// The primary keeps taking writes during the whole recovery.
	writes, err := testcluster.StartWriteProbe(ctx, c.Layout.DSN(), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer writes.Stop()
	mistake := time.Now()
	onPrimary(`DROP TABLE IF EXISTS app."Precious Orders"`)

	// 1. Hold the delayed standby before the mistake, and stop it.
	ctl(t, c, "replay", delayed, "--until", mistake.UTC().Format(time.RFC3339Nano))
	c.WaitFor(delayed+" held", 60*time.Second, func(status.Report) bool {
		conn, err := pgx.Connect(ctx, c.NodeDSN(delayed))
		if err != nil {
			return false
		}
		defer conn.Close(ctx)
		var paused bool
		return conn.QueryRow(ctx, `SELECT pg_is_wal_replay_paused()`).Scan(&paused) == nil && paused
	})
	ctl(t, c, "stop", delayed)
	c.WaitFor(delayed+"'s PostgreSQL stopped", 60*time.Second, func(status.Report) bool {
		return c.Layout.PostmasterPID(delayed) == 0
	})

	// 2. Copy its data directory aside and promote the copy at the hold
	// point, with nothing of the cluster's: no archiving, no upstream, no
	// synchronous standbys, its own port.
	acct, err := osuser.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(c.Layout.NodeDir(delayed), "data")
	rescue := filepath.Join(c.Layout.Dir, "rescue")
	if out, err := exec.Command("cp", "-a", "--reflink=auto", data, rescue).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	_ = os.Remove(filepath.Join(rescue, "standby.signal"))
	_ = os.Remove(filepath.Join(rescue, "postmaster.pid"))
	if err := os.WriteFile(filepath.Join(rescue, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := acct.ChownTree(rescue); err != nil {
		t.Fatal(err)
	}
	port := testcluster.FreePort(t)
	pgBin := config.DetectBinDir()
	srv := exec.Command(filepath.Join(pgBin, "postgres"), "-D", rescue, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "archive_mode=off", "-c", "primary_conninfo=", "-c", "restore_command=false",
		"-c", "synchronous_standby_names=", "-c", "recovery_target_action=promote", "-c", "cluster_name=rescue")
	acct.Apply(srv)
	logf, err := os.Create(filepath.Join(c.Layout.Dir, "rescue.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	defer func() {
		_ = srv.Process.Signal(syscall.SIGINT) // fast shutdown
		<-exited
	}()
	rescueDSN := c.Layout.ClientDSN("127.0.0.1", port)
	deadline, last := time.Now().Add(90*time.Second), ""
	for {
		conn, err := pgx.Connect(ctx, rescueDSN)
		if err == nil {
			var inRecovery bool
			err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery)
			conn.Close(ctx)
			if err == nil && !inRecovery {
				break
			}
			if err == nil {
				err = errStr("still in recovery")
			}
		}
		last = err.Error()
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(c.Layout.Dir, "rescue.log"))
			t.Fatalf("the rescue copy exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(c.Layout.Dir, "rescue.log"))
			t.Fatalf("the rescue copy was not promoted within 90s (last: %s):\n%s", last, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n, err := count(rescueDSN); err != nil || n != 1000 {
		t.Fatalf("the promoted copy has %d rows of the dropped table (%v), want 1000", n, err)
	}

	// 3. pg_dump carries the table back to the primary.
	dump := exec.Command(filepath.Join(pgBin, "pg_dump"), "-d", rescueDSN, "-t", `app."Precious Orders"`)
	restore := exec.Command(filepath.Join(pgBin, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-q", "-d", c.NodeDSN(leader))
	pipe, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	restore.Stdin = pipe
	var dumpErr, restoreOut strings.Builder
	dump.Stderr = &dumpErr
	restore.Stdout, restore.Stderr = &restoreOut, &restoreOut
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	if err := restore.Run(); err != nil {
		t.Fatalf("psql into the primary: %v\n%s", err, restoreOut.String())
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("pg_dump from the rescue copy: %v\n%s", err, dumpErr.String())
	}
	if n, err := count(c.NodeDSN(leader)); err != nil || n != 1000 {
		t.Fatalf("the primary has %d rows of the table back (%v), want 1000", n, err)
	}

	// 4. The standby starts again, still held; the hold is withdrawn and
	// it replays everything, the table's return included.
	ctl(t, c, "start", delayed)
	ctl(t, c, "replay", delayed, "--cancel")
	c.WaitFor(delayed+" streaming with the table back", 90*time.Second, func(r status.Report) bool {
		n, err := count(c.NodeDSN(delayed))
		return member(r, delayed).Streaming && err == nil && n == 1000
	})
	acks := writes.Stop()
	if r, _ := c.Status(); r.Leader != leader {
		t.Fatalf("the leader changed during the recovery: %s, was %s", r.Leader, leader)
	}
	// Generous: a loaded machine may make the primary fence and restart
	// in place (above); the recovery itself must not stop the writes.
	if gap := testcluster.MaxGap(acks, mistake); gap > 15*time.Second {
		t.Fatalf("the primary's writes paused %s during the recovery", gap)
	}
	t.Logf("dropped table recovered: 1000 rows back on %s; %d writes acknowledged meanwhile, longest pause %s",
		leader, len(acks), testcluster.MaxGap(acks, mistake).Round(time.Millisecond))
}

type errStr string

func (e errStr) Error() string { return string(e) }
