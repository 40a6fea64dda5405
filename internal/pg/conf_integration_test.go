package pg_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Issue 13: a member address with a quote or a backslash reaches
// primary_conninfo as it is. postgresql.conf reads backslash escapes inside
// quoted values; PostgreSQL's own parser (postgres -C) must give back the
// connection string the agent built, and libpq must read the host back.
func TestConninfoWithQuotesAndBackslashesSurvivesPostgresqlConf(t *testing.T) {
	p := testcluster.StartPostgres(t, testcluster.PGOptions{})
	p.Stop()
	inst := pg.New(pg.Options{Name: "n2", BinDir: testcluster.PGBinDir, DataDir: p.DataDir(), ListenAddress: "127.0.0.1", Port: p.Port(),
		Superuser: "postgres", ReplUser: "replicator", Account: p.Account(), ArchiveCommand: `/opt/pg guard/bin\pgguard wal-push -c 'x' %p`})
	up := pg.Upstream{Name: "n1", Host: `db'1\host`, Port: 5432}
	if err := inst.WriteConfig(false, &up); err != nil {
		t.Fatal(err)
	}
	for setting, want := range map[string]string{
		"primary_conninfo": inst.ReplicationConninfo(up),
		"archive_command":  `/opt/pg guard/bin\pgguard wal-push -c 'x' %p`,
	} {
		cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "postgres"), "-D", p.DataDir(), "-C", setting)
		p.Account().Apply(cmd)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("postgres -C %s: %v: %s", setting, err, out)
		}
		if got := strings.TrimRight(string(out), "\n"); got != want {
			t.Errorf("%s as PostgreSQL reads it:\n  %s\nwant\n  %s", setting, got, want)
		}
	}
	cfg, err := pgconn.ParseConfig(inst.ReplicationConninfo(up))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != up.Host {
		t.Errorf("libpq reads host %q, want %q", cfg.Host, up.Host)
	}
	// The passfile is forced to 0600 even when it existed with a laxer mode.
	if err := os.WriteFile(inst.PassFile(), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(inst.PassFile(), 0o644)
	if err := inst.WritePassFile(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(inst.PassFile()); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("passfile mode %v (err %v), want 0600", st.Mode().Perm(), err)
	}
}

// A former primary that crashed, then failed to start as a standby (its
// WAL had diverged), still finishes its crash recovery so that pg_rewind
// can run: single-user mode refuses standby.signal, and the chaos suite's
// link-flap trial of 2026-12-04 (async, seed 9404) kept such a node out
// for good, failing the same step twice a second.
func TestCrashRecoveryOfAFormerPrimaryHoldingASignalFile(t *testing.T) {
	p := testcluster.StartPostgres(t, testcluster.PGOptions{})
	p.Exec(t, "CREATE TABLE t AS SELECT 1 AS x")
	p.Kill()
	inst := pg.New(pg.Options{Name: "n1", BinDir: testcluster.PGBinDir, DataDir: p.DataDir(), ListenAddress: "127.0.0.1", Port: p.Port(),
		Superuser: "postgres", ReplUser: "replicator", Account: p.Account()})
	ctx := context.Background()
	ctl, err := inst.Controldata(ctx)
	if err != nil || ctl.State != ha.ControlInProduction {
		t.Fatalf("after SIGKILL the control file says %q (%v), want %q", ctl.State, err, ha.ControlInProduction)
	}
	for _, f := range []string{"standby.signal", "recovery.signal"} {
		if err := os.WriteFile(filepath.Join(p.DataDir(), f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := inst.CrashRecover(ctx); err != nil {
		t.Fatalf("crash recovery with signal files present: %v", err)
	}
	if ctl, err = inst.Controldata(ctx); err != nil || ctl.State != ha.ControlShutDown {
		t.Fatalf("after crash recovery the control file says %q (%v), want %q", ctl.State, err, ha.ControlShutDown)
	}
}
