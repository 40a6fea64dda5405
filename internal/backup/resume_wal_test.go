package backup_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster/objects"
)

// TestBackupKilledThenRerunUploadsOnlyWhatWasMissing kills a full backup
// with SIGKILL once it has saved packs, runs it again, and compares the
// bytes the rerun stored with a clean full of the same data into a fresh
// repository: the rerun stores less by about what the killed run had
// already saved.
func TestBackupKilledThenRerunUploadsOnlyWhatWasMissing(t *testing.T) {
	e := newEnv(t, nil)
	pg := e.startPG()
	// No compression and 1 MiB packs: stored bytes follow bytes read, and
	// packs reach the repository steadily during the backup.
	e.ok("repo", "init", "--compression", "none", "--pack-size", "1")
	pg.Pgbench(t, "-i", "-s", "10", "-q")
	pg.Exec(t, "CHECKPOINT")

	be, err := storage.NewLocal(strings.TrimPrefix(e.repoURL, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.bin, "backup", "full", "--channels", "1", "-o", "json", "-c", e.cfgPath)
	e.acct.Apply(cmd)
	cmd.Env = filteredEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var saved int64
	var packs int
	deadline := time.Now().Add(2 * time.Minute)
	for packs < 40 {
		select {
		case err := <-exited:
			t.Fatalf("backup finished (%v) before it could be killed; saw %d packs", err, packs)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("backup saved only %d packs within 2m", packs)
		}
		saved, packs = objects.Usage(t, be, "packs/")
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	saved, packs = objects.Usage(t, be, "packs/")
	if err := be.List(context.Background(), "manifests/", func(fi storage.FileInfo) error {
		t.Errorf("killed backup left manifest %s", fi.Name)
		return nil
	}); err != nil && !storage.IsNotExist(err) {
		t.Fatal(err)
	}
	t.Logf("killed backup left %d packs, %d bytes", packs, saved)

	rerun := e.backup("full")
	if rerun.PacksReused == 0 {
		t.Errorf("rerun reused no packs of the killed run")
	}
	e.ok("verify", "--backup", rerun.ID)

	// A clean full of the same data into a fresh repository.
	ref := newEnv(t, nil)
	ref.writeConfig(pg.DataDir(), pg.Port())
	ref.ok("repo", "init", "--compression", "none", "--pack-size", "1")
	clean := ref.backup("full")
	t.Logf("rerun stored %d bytes, clean full %d, killed run had saved %d", rerun.StoredSize, clean.StoredSize, saved)
	if rerun.StoredSize+saved*8/10 > clean.StoredSize {
		t.Errorf("rerun stored %d bytes; a clean full stores %d and the killed run had saved %d: blocks were uploaded again", rerun.StoredSize, clean.StoredSize, saved)
	}
}

// TestWALPushAndFetchExitCodes: archive_command and restore_command see the
// exit codes PostgreSQL expects.
func TestWALPushAndFetchExitCodes(t *testing.T) {
	e := newEnv(t, nil)
	e.writeConfig("/nonexistent", 5432)
	e.ok("repo", "init")
	walDir := filepath.Join(e.dir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	seg := filepath.Join(walDir, "000000010000000000000003")
	data := make([]byte, 16<<20)
	rand.Read(data[:8192])
	os.WriteFile(seg, data, 0o600)
	e.acct.ChownTree(e.dir)

	for i := range 2 {
		if res := e.run(nil, "wal-push", "-c", e.cfgPath, seg); res.code != 0 {
			t.Fatalf("wal-push #%d of the same segment: exit %d: %s", i+1, res.code, res.stderr)
		}
	}
	data[100] ^= 1
	os.WriteFile(seg, data, 0o600)
	res := e.run(nil, "wal-push", "-c", e.cfgPath, seg)
	if res.code != 1 || !strings.Contains(res.stderr, "refusing to overwrite") {
		t.Errorf("wal-push of other content under an archived name: exit %d, stderr %q; want exit 1 and a clear refusal", res.code, res.stderr)
	}

	dest := filepath.Join(walDir, "RECOVERYXLOG")
	res = e.run(nil, "wal-fetch", "-c", e.cfgPath, "00000002.history", dest)
	if res.code != 1 || res.stderr != "" {
		t.Errorf("wal-fetch of a missing history file: exit %d, stderr %q; want exit 1 and silence", res.code, res.stderr)
	}
	res = e.run(nil, "wal-fetch", "-c", e.cfgPath, "000000010000000000000003", dest)
	got, _ := os.ReadFile(dest)
	data[100] ^= 1
	if res.code != 0 || string(got) != string(data) {
		t.Errorf("wal-fetch of an archived segment: exit %d, stderr %q, content equal %v", res.code, res.stderr, string(got) == string(data))
	}
	res = e.run(nil, "wal-push", "-c", e.cfgPath)
	if res.code != 2 {
		t.Errorf("wal-push without a path: exit %d, want 2", res.code)
	}
}
