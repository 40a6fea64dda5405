package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/walspool"
	"github.com/pgguard/pgguard/internal/walstats"
)

// install builds pgguard-wal into a new directory with a stand-in pgguard
// beside it that writes its arguments to a file and exits 3, and returns
// the program, that file, and a data directory holding one WAL segment.
func install(t *testing.T) (prog, argsFile, dataDir, seg string) {
	t.Helper()
	bin := t.TempDir()
	prog = filepath.Join(bin, "pgguard-wal")
	if built := os.Getenv("PGGUARD_TEST_BIN_DIR"); built != "" {
		// make test built it from this tree already (testcluster.BinDirVar).
		data, err := os.ReadFile(filepath.Join(built, "pgguard-wal"))
		if err != nil {
			t.Fatalf("PGGUARD_TEST_BIN_DIR=%s: %v", built, err)
		}
		if err := os.WriteFile(prog, data, 0o755); err != nil {
			t.Fatal(err)
		}
	} else if out, err := exec.Command("go", "build", "-o", prog, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	argsFile = filepath.Join(t.TempDir(), "args")
	script := "#!/bin/sh\necho \"$@\" > " + argsFile + "\nexit 3\n"
	if err := os.WriteFile(filepath.Join(bin, "pgguard"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir = filepath.Join(t.TempDir(), "data")
	seg = "000000010000000000000007"
	if err := os.MkdirAll(filepath.Join(dataDir, "pg_wal"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "pg_wal", seg), []byte(strings.Repeat("wal", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	return prog, argsFile, dataDir, seg
}

// run runs prog as PostgreSQL runs archive_command: in the data directory,
// with %p relative to it.
func run(t *testing.T, prog, dataDir string, args ...string) int {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dataDir
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v\n%s", prog, err, out)
	}
	return 0
}

func record(t *testing.T, dataDir, seg string, content []byte) {
	t.Helper()
	spool := walspool.PushDir(filepath.Join(dataDir, "pg_wal", seg))
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if err := os.WriteFile(filepath.Join(spool, seg+".ok"), []byte(hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A segment the WAL stream recorded with the same content is confirmed
// without running pgguard, and the call is counted for the agent's
// metrics beside the data directory.
func TestRecordedSegmentIsConfirmedWithoutPgguard(t *testing.T) {
	prog, argsFile, dataDir, seg := install(t)
	content, _ := os.ReadFile(filepath.Join(dataDir, "pg_wal", seg))
	record(t, dataDir, seg, content)
	if rc := run(t, prog, dataDir, "wal-push", "-c", "/etc/pgguard/node.yaml", "pg_wal/"+seg); rc != 0 {
		t.Fatalf("exit %d, want 0", rc)
	}
	if _, err := os.Stat(argsFile); err == nil {
		t.Fatal("pgguard ran for a segment the stream had recorded")
	}
	if _, err := os.Stat(filepath.Join(walspool.PushDir(filepath.Join(dataDir, "pg_wal", seg)), seg+".ok")); err == nil {
		t.Fatal("the record was not consumed")
	}
	st, err := walstats.Read(walstats.Path(dataDir))
	if err != nil || st.Count != 1 || st.Failures != 0 || st.LastSuccess.IsZero() {
		t.Fatalf("walstats after one confirmed push: %+v (%v), want one call", st, err)
	}
}

// Anything else becomes pgguard with the same arguments and exit code:
// no record, a record of other content, another sub-command, -o json.
func TestEverythingElseRunsPgguard(t *testing.T) {
	for _, tc := range []struct {
		name   string
		record []byte
		args   []string
	}{
		{"no record", nil, []string{"wal-push", "-c", "/x.yaml", "pg_wal/000000010000000000000007"}},
		{"other content", []byte("other"), []string{"wal-push", "-c", "/x.yaml", "pg_wal/000000010000000000000007"}},
		{"wal-fetch", nil, []string{"wal-fetch", "-c", "/x.yaml", "000000010000000000000007", "pg_wal/RECOVERYXLOG"}},
		{"json output", []byte(strings.Repeat("wal", 1000)), []string{"wal-push", "-o", "json", "pg_wal/000000010000000000000007"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prog, argsFile, dataDir, seg := install(t)
			if tc.record != nil {
				record(t, dataDir, seg, tc.record)
			}
			if rc := run(t, prog, dataDir, tc.args...); rc != 3 {
				t.Fatalf("exit %d, want pgguard's 3", rc)
			}
			got, err := os.ReadFile(argsFile)
			if err != nil {
				t.Fatalf("pgguard did not run: %v", err)
			}
			if strings.TrimSpace(string(got)) != strings.Join(tc.args, " ") {
				t.Fatalf("pgguard ran with %q, want %q", strings.TrimSpace(string(got)), strings.Join(tc.args, " "))
			}
		})
	}
}

// restore_command is answered by the agent serving the data directory,
// without pgguard: the file written (exit 0), or "not in the archive"
// (exit 1, the quiet no PostgreSQL expects). When the agent fails, or
// none listens, pgguard runs with the same arguments.
func TestAgentAnswersWALFetchWithoutPgguard(t *testing.T) {
	prog, argsFile, dataDir, _ := install(t)
	config := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(config, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &walspool.FetchServer{DataDir: dataDir, Config: config, Limit: 5 * time.Second,
		Fetch: func(_ context.Context, name, dest string) (bool, error) {
			switch name {
			case "000000010000000000000008":
				return true, os.WriteFile(dest, []byte("segment 8"), 0o600)
			case "00000002.history":
				return false, nil
			}
			return false, errors.New("repository unreachable")
		}}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	for _, tc := range []struct {
		args []string
		rc   int // 3: pgguard ran
	}{
		{[]string{"wal-fetch", "-c", config, "000000010000000000000008", "pg_wal/RECOVERYXLOG"}, 0},
		{[]string{"wal-fetch", "-c", config, "00000002.history", "pg_wal/RECOVERYHISTORY"}, 1},
		{[]string{"wal-fetch", "-c", config, "000000010000000000000009", "pg_wal/RECOVERYXLOG"}, 3},
		// Not the agent's repository, or not its exact command line.
		{[]string{"wal-fetch", "-c", "/etc/pgguard/other.yaml", "000000010000000000000008", "pg_wal/RECOVERYXLOG"}, 3},
		{[]string{"wal-fetch", "--repo", "file:///srv/repo", "000000010000000000000008", "pg_wal/RECOVERYXLOG"}, 3},
		{[]string{"wal-fetch", "-c", config, "--prefetch", "0", "000000010000000000000008", "pg_wal/RECOVERYXLOG"}, 3},
	} {
		os.Remove(argsFile)
		if rc := run(t, prog, dataDir, tc.args...); rc != tc.rc {
			t.Fatalf("%q: exit %d, want %d", tc.args, rc, tc.rc)
		}
		_, err := os.Stat(argsFile)
		if ranPgguard := err == nil; ranPgguard != (tc.rc == 3) {
			t.Fatalf("%q: pgguard ran: %v, want %v", tc.args, ranPgguard, tc.rc == 3)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", "RECOVERYXLOG")); err != nil || string(b) != "segment 8" {
		t.Fatalf("restore_command's file: %q, %v", b, err)
	}
}
