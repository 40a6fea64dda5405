package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// `pgguard copy` between two repositories with different passphrases:
// bad input fails with exit code 2 and a message saying what to do, and
// changes neither repository; a good copy verifies, and copying again
// stores nothing and says so.
func TestCopyCommand(t *testing.T) {
	exe := testcluster.Binary(t)
	dir := t.TempDir()
	srcDir, dstDir := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	const srcPass, dstPass = "source passphrase", "destination passphrase"
	// run returns stdout, then stderr, and the exit code.
	runOut := func(env []string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return stdout.String(), stderr.String(), 0
		case errors.As(err, &ee):
			return stdout.String(), stderr.String(), ee.ExitCode()
		}
		t.Fatalf("%v: %v", args, err)
		return "", "", -1
	}
	run := func(env []string, args ...string) (string, int) {
		t.Helper()
		stdout, stderr, code := runOut(env, args...)
		return stdout + stderr, code
	}
	for _, r := range []struct{ dir, pass string }{{srcDir, srcPass}, {dstDir, dstPass}} {
		if out, code := run([]string{"PGGUARD_PASSPHRASE=" + r.pass}, "repo", "init", "--repo", "file://"+r.dir); code != 0 {
			t.Fatalf("repo init: %s", out)
		}
	}

	// One backup and two WAL segments in the source.
	ctx := context.Background()
	be, err := storage.NewLocal(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := repo.Open(ctx, be, repo.Passphrase(srcPass), repo.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	b, err := src.NewBackup(repo.Header{Kind: repo.KindFull, StartTime: start, StartLSN: 0x2000028, Timeline: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"backup_label": []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n"),
		"base/1/16384": []byte(strings.Repeat("pgguard copy test page ", 40000)),
	}
	for path, data := range files {
		w, err := b.CreateFile(ctx, repo.FileMeta{Path: path, Mode: 0o600, MTime: start})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := b.Finish(ctx, b.Header())
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range []string{"000000010000000000000002", "000000010000000000000003"} {
		if err := src.PutWAL(ctx, seg, []byte(strings.Repeat(seg, 1000))); err != nil {
			t.Fatal(err)
		}
	}
	src.Close(ctx)

	base := []string{"copy", "--repo", "file://" + srcDir}
	good := []string{"PGGUARD_PASSPHRASE=" + srcPass, "PGGUARD_TO_PASSPHRASE=" + dstPass}
	srcBefore, dstBefore := testcluster.Listing(t, srcDir, testcluster.SizeOf), testcluster.Listing(t, dstDir, testcluster.SizeOf)
	missing := filepath.Join(dir, "nowhere")
	cases := []struct {
		name    string
		env     []string
		args    []string
		mention string
	}{
		{"no selection", good, []string{"--to-repo", "file://" + dstDir}, "--newest"},
		{"two selections", good, []string{"--to-repo", "file://" + dstDir, "--all", "--newest", "1"}, "only one"},
		{"bad WAL mode", good, []string{"--to-repo", "file://" + dstDir, "--all", "--wal", "most"}, "--wal"},
		{"no destination", good, []string{"--all"}, "--to-repo"},
		{"relative destination", good, []string{"--all", "--to-repo", "dst"}, "--to-repo"},
		{"destination is the source", good, []string{"--all", "--to-repo", srcDir}, "is the source"},
		{"no destination key", []string{"PGGUARD_PASSPHRASE=" + srcPass, "PGGUARD_TO_PASSPHRASE="}, []string{"--all", "--to-repo", "file://" + dstDir}, "PGGUARD_TO_PASSPHRASE"},
		{"wrong destination key", []string{"PGGUARD_PASSPHRASE=" + srcPass, "PGGUARD_TO_PASSPHRASE=not it"}, []string{"--all", "--to-repo", "file://" + dstDir}, "does not open it"},
		{"wrong source key", []string{"PGGUARD_PASSPHRASE=not it", "PGGUARD_TO_PASSPHRASE=" + dstPass}, []string{"--all", "--to-repo", "file://" + dstDir}, "does not open it"},
		{"destination not initialised", good, []string{"--all", "--to-repo", "file://" + missing}, "repo init"},
		{"unknown backup", good, []string{"--to-repo", "file://" + dstDir, "--backup", "20200101T000000Z-00000000"}, "not in the source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := run(c.env, append(base, c.args...)...)
			if code != 2 || !strings.Contains(out, c.mention) {
				t.Fatalf("exit %d, want 2 with a message naming %q:\n%s", code, c.mention, out)
			}
			if testcluster.Listing(t, srcDir, testcluster.SizeOf) != srcBefore || testcluster.Listing(t, dstDir, testcluster.SizeOf) != dstBefore {
				t.Fatal("a refused copy changed a repository")
			}
			if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a refused copy created %s", missing)
			}
		})
	}

	out, stderr, code := runOut(good, append(base, "--to-repo", "file://"+dstDir, "--all", "-o", "json")...)
	if code != 0 {
		t.Fatalf("copy: exit %d\n%s%s", code, out, stderr)
	}
	var rep struct {
		Copied      []string `json:"copied"`
		BytesStored int64    `json:"bytes_stored"`
		StoredSize  int64    `json:"stored_size"`
		BytesRead   int64    `json:"bytes_read"`
		WALCopied   int      `json:"wal_copied"`
		ID          string   `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("copy -o json: %v\n%s", err, out)
	}
	if len(rep.Copied) != 1 || rep.Copied[0] != m.ID || rep.BytesStored == 0 || rep.StoredSize != rep.BytesStored || rep.WALCopied != 2 || rep.ID != m.ID {
		t.Fatalf("copy report: %+v\n%s", rep, out)
	}
	if out, code := run([]string{"PGGUARD_PASSPHRASE=" + dstPass}, "verify", "--all", "--repo", "file://"+dstDir); code != 0 {
		t.Fatalf("verify of the copy: exit %d\n%s", code, out)
	}
	if out, code := run([]string{"PGGUARD_PASSPHRASE=" + dstPass}, "backups", "--repo", "file://"+dstDir); code != 0 || !strings.Contains(out, m.ID) {
		t.Fatalf("backups of the copy: exit %d\n%s", code, out)
	}
	before := testcluster.Listing(t, dstDir, testcluster.SizeOf)
	out, code = run(good, append(base, "--to-repo", "file://"+dstDir, "--newest", "1")...)
	if code != 0 || !strings.Contains(out, "nothing new") || !strings.Contains(out, "stored 0 B") {
		t.Fatalf("second copy: exit %d, want it to say nothing new was stored:\n%s", code, out)
	}
	if testcluster.Listing(t, dstDir, testcluster.SizeOf) != before {
		t.Fatal("the second copy changed the destination")
	}
	t.Logf("second copy: %s", strings.TrimSpace(out))

	// The destination and its key file from the config.
	keyFile := filepath.Join(dir, "dst.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("k", 48)), 0o600); err != nil {
		t.Fatal(err)
	}
	kfDir := filepath.Join(dir, "kf")
	initCfg := nodeConfig(t, dir, "kf.yaml", "repository:\n  url: file://"+kfDir+"\n  key_file: "+keyFile+"\n")
	if out, code := run(nil, "repo", "init", "-c", initCfg); code != 0 {
		t.Fatalf("repo init with a key file: %s", out)
	}
	cfg := nodeConfig(t, dir, "src.yaml", "repository:\n  url: file://"+srcDir+"\n  copy_to:\n    url: file://"+kfDir+"\n    key_file: "+keyFile+"\n")
	out, code = run([]string{"PGGUARD_PASSPHRASE=" + srcPass, "PGGUARD_TO_PASSPHRASE="}, "copy", "-c", cfg, "--all")
	if code != 0 || !strings.Contains(out, "copied 1 backups") {
		t.Fatalf("copy with repository.copy_to from the config: exit %d\n%s", code, out)
	}
}

// nodeConfig writes a minimal node config with the given repository
// section and returns its path.
func nodeConfig(t *testing.T, dir, name, repository string) string {
	t.Helper()
	y := "cluster: c\nname: n1\npostgresql:\n  data_dir: " + filepath.Join(dir, "data") + "\n  port: 15999\n" +
		"etcd:\n  allow_plaintext: true\n  embed:\n    data_dir: " + filepath.Join(dir, "etcd") +
		"\n    client_url: http://127.0.0.1:12999\n    peer_url: http://127.0.0.1:12998\n    initial_cluster: n1=http://127.0.0.1:12998\n" +
		repository
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
