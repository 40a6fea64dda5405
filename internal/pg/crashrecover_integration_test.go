package pg_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

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
