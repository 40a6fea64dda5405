package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// env is one test's pgguard setup: a config file naming the repository and
// a key file, both readable by the PostgreSQL account, which runs every
// pgguard command (as archive_command does) so that the repository has one
// owner.
type env struct {
	t       *testing.T
	bin     string
	acct    osuser.Account
	dir     string // scratch, owned by the account
	repoURL string
	s3      *testcluster.S3Server
	cfgPath string
	keyFile string
}

func newEnv(t *testing.T, s3 *testcluster.S3Server) *env {
	t.Helper()
	dir := testcluster.Scratch(t, "pgguard-backup-")
	e := &env{t: t, bin: testcluster.Binary(t), acct: testcluster.Account(t), dir: dir, s3: s3}
	e.keyFile = filepath.Join(dir, "repo.key")
	key := make([]byte, 64)
	rand.Read(key)
	if err := os.WriteFile(e.keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if s3 != nil {
		e.repoURL = s3.URL("t" + strings.ToLower(rand.Text()[:8]))
	} else {
		e.repoURL = "file://" + filepath.Join(dir, "repo")
	}
	return e
}

// writeConfig writes node.yaml for the server on port with data dir.
func (e *env) writeConfig(dataDir string, port int) {
	e.t.Helper()
	cfg := testcluster.RepoConfig("n1", dataDir, port, e.repoURL, e.keyFile)
	if e.s3 != nil {
		cfg += fmt.Sprintf("  s3:\n    endpoint: %s\n    region: %s\n    access_key: %s\n    secret_key: %s\n",
			e.s3.Endpoint, e.s3.Region, e.s3.AccessKey, e.s3.SecretKey)
	}
	e.cfgPath = filepath.Join(e.dir, "node.yaml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := e.acct.ChownTree(e.dir); err != nil {
		e.t.Fatal(err)
	}
}

// archiveConf are postgresql.conf lines that archive into the repository.
func (e *env) archiveConf() []string {
	return []string{"archive_mode = on",
		fmt.Sprintf("archive_command = '%s wal-push -c %s %%p'", e.bin, e.cfgPath),
		"wal_keep_size = '1GB'", "max_wal_size = '1GB'", "checkpoint_timeout = '30min'"}
}

// startPG starts a server archiving into the repository. The config needs
// the port, which needs the server: the config is written with the data
// directory and port after start, and archiving starts failing-then-working
// until it exists (PostgreSQL retries).
func (e *env) startPG() *testcluster.Postgres {
	e.t.Helper()
	// A first config so that archive_command has a file to read.
	e.writeConfig("/nonexistent", 5432)
	pg := testcluster.StartPostgres(e.t, testcluster.PGOptions{Conf: e.archiveConf()})
	e.writeConfig(pg.DataDir(), pg.Port())
	return pg
}

// newRepoEnv is newEnv with a server archiving into the repository, which
// is initialised (with the defaults).
func newRepoEnv(t *testing.T, s3 *testcluster.S3Server) (*env, *testcluster.Postgres) {
	t.Helper()
	e := newEnv(t, s3)
	pg := e.startPG()
	e.ok("repo", "init")
	return e, pg
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs pgguard as the PostgreSQL account with env extra added.
func (e *env) run(extraEnv []string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	e.acct.Apply(cmd)
	cmd.Dir = e.dir
	cmd.Env = append(filteredEnv(), extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		e.t.Fatalf("run pgguard %v: %v", args, err)
	}
	return res
}

// filteredEnv is the test's environment without a passphrase.
func filteredEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGGUARD_PASSPHRASE=") && !strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	return append(out, "HOME="+os.TempDir())
}

// ok runs pgguard -c config args and fails the test unless it exits 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	res := e.run(nil, append(args, "-c", e.cfgPath)...)
	if res.code != 0 {
		e.t.Fatalf("pgguard %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, lastLines(res.stderr, 20))
	}
	return res
}

// backupReport is the JSON a backup command prints.
type backupReport struct {
	ID                string `json:"id"`
	Kind              string `json:"kind"`
	Note              string `json:"note"`
	Size              int64  `json:"size"`
	BytesRead         int64  `json:"bytes_read"`
	StoredSize        int64  `json:"stored_size"`
	StartLSN          string `json:"start_lsn"`
	StopLSN           string `json:"stop_lsn"`
	Timeline          int    `json:"timeline"`
	FilesRead         int64  `json:"files_read"`
	FilesFromPrevious int64  `json:"files_from_previous"`
	PagesChecked      int64  `json:"pages_checked"`
	WALMapUsed        bool   `json:"wal_map_used"`
	WALMapFallback    string `json:"wal_map_fallback"`
	PacksReused       int    `json:"packs_reused"`
}

func (e *env) backup(kind string, extra ...string) backupReport {
	e.t.Helper()
	res := e.ok(append([]string{"backup", kind, "-o", "json", "--channels", "4"}, extra...)...)
	var rep backupReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		e.t.Fatalf("backup %s printed %q: %v", kind, res.stdout, err)
	}
	e.t.Logf("backup %s: id %s kind %s size %d read %d stored %d files read %d from previous %d wal map %v %s",
		kind, rep.ID, rep.Kind, rep.Size, rep.BytesRead, rep.StoredSize, rep.FilesRead, rep.FilesFromPrevious, rep.WALMapUsed, rep.WALMapFallback)
	return rep
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// openRepo opens the repository read-only from the test process.
func (e *env) openRepo() *repo.Repository {
	e.t.Helper()
	ctx := context.Background()
	var opts storage.S3Options
	if e.s3 != nil {
		opts = e.s3.Options()
	}
	be, err := storage.Open(ctx, e.repoURL, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := repo.KeyFile(e.keyFile)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, key, repo.Runtime{})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// manifest opens the repository and loads the manifest of backup id.
func (e *env) manifest(id string) (*repo.Repository, *repo.Manifest) {
	e.t.Helper()
	r := e.openRepo()
	m, err := r.LoadManifest(context.Background(), id)
	if err != nil {
		e.t.Fatalf("load manifest of backup %s: %v", id, err)
	}
	return r, m
}

// startRestored materialises backup m, lets prepare change the data
// directory (prepare may be nil), starts PostgreSQL on it and waits until
// recovery has ended; what names the restore in a failure.
func (e *env) startRestored(what string, r *repo.Repository, m *repo.Manifest, prepare func(dataDir string)) *testcluster.Postgres {
	e.t.Helper()
	dataDir := e.materialize(r, m)
	if prepare != nil {
		prepare(dataDir)
	}
	restored := testcluster.StartPostgres(e.t, testcluster.PGOptions{DataDir: dataDir})
	testcluster.WaitUntil(e.t, 2*time.Minute, what+" leaves recovery", func() (bool, string) {
		s := restored.QueryString(e.t, "SELECT pg_is_in_recovery()")
		return s == "false", "pg_is_in_recovery=" + s + "\n" + restored.LogTail(5)
	})
	return restored
}

// materialize writes backup m into a new data directory the way a restore
// does (every file, directories and symlinks, backup_label included) and
// sets up recovery through pgguard wal-fetch. It is a test-side restore so
// that backups are checked by PostgreSQL itself.
func (e *env) materialize(r *repo.Repository, m *repo.Manifest) string {
	e.t.Helper()
	ctx := context.Background()
	dst := filepath.Join(e.dir, "restore-"+m.ID)
	for _, f := range m.Files {
		p := filepath.Join(dst, filepath.FromSlash(f.Path))
		mode := fs.FileMode(f.Mode)
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(p, 0o700); err != nil {
				e.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			e.t.Fatal(err)
		}
		rc, err := r.ReadFile(ctx, m, f.Path)
		if err != nil {
			e.t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			e.t.Fatalf("read %s from backup %s: %v", f.Path, m.ID, err)
		}
		if mode&fs.ModeSymlink != 0 {
			if err := os.Symlink(string(data), p); err != nil {
				e.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, data, mode.Perm()|0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	auto := fmt.Sprintf("\nrestore_command = '%s wal-fetch -c %s %%f %%p'\narchive_mode = off\n", e.bin, e.cfgPath)
	f, err := os.OpenFile(filepath.Join(dst, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	f.WriteString(auto)
	f.Close()
	if err := os.WriteFile(filepath.Join(dst, "recovery.signal"), nil, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return dst
}
