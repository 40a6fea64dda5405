package pg_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// TestReadControlFileMatchesPgControldata reads a real server's
// global/pg_control directly, running and cleanly stopped, and checks
// every field against pg_controldata's reading of the same file; a
// corrupted copy is refused by its CRC.
func TestReadControlFileMatchesPgControldata(t *testing.T) {
	p := testcluster.StartPostgres(t, testcluster.PGOptions{})
	p.Exec(t, "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
	p.Exec(t, "CHECKPOINT")
	same := func(wantState string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(testcluster.PGBinDir, "pg_controldata"), "-D", p.DataDir()).CombinedOutput()
		if err != nil {
			t.Fatalf("pg_controldata: %v\n%s", err, out)
		}
		want, err := pg.ParseControldata(string(out))
		if err != nil {
			t.Fatal(err)
		}
		got, err := pg.ReadControlFile(p.DataDir())
		if err != nil {
			t.Fatalf("ReadControlFile: %v", err)
		}
		if got != want || got.State != wantState || got.CheckpointLSN == 0 || got.SystemID == "" {
			t.Fatalf("ReadControlFile = %+v, pg_controldata = %+v (want state %q)", got, want, wantState)
		}
		t.Logf("%+v", got)
	}
	same("in production")
	p.Stop()
	same("shut down")

	data, err := os.ReadFile(filepath.Join(p.DataDir(), "global", "pg_control"))
	if err != nil {
		t.Fatal(err)
	}
	data[40] ^= 0xff // inside the checkpoint's copy
	bad := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(bad, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "global", "pg_control"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := pg.ReadControlFile(bad); err == nil {
		t.Fatalf("a control file with a changed byte was read as %+v", c)
	} else {
		t.Logf("changed byte refused: %v", err)
	}
}
