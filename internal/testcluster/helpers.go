package testcluster

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/osuser"
)

// WaitUntil polls cond until it reports true or timeout passes, then fails
// the test with what cond last reported. cond returns whether the state is
// reached and a description of what it saw, for the failure message.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	t.Fatalf("%s: not reached within %s; last seen: %s", what, timeout, last)
}

// FreePort asks the kernel for a free loopback port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Account is the operating-system account PostgreSQL (and every pgguard
// command a test runs for it) runs as.
func Account(t testing.TB) osuser.Account {
	t.Helper()
	acct, err := osuser.Resolve("")
	if err != nil {
		t.Fatalf("resolve postgres account: %v", err)
	}
	return acct
}

// Scratch makes a new directory under the system temporary directory (its
// name starting with prefix) that the PostgreSQL account owns, removed at
// cleanup.
func Scratch(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("create temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := Account(t).ChownTree(dir); err != nil {
		t.Fatalf("chown %s: %v", dir, err)
	}
	return dir
}

// StartArchivingPostgres starts a server that archives WAL with cp into a
// new directory, which it returns with the server. Checkpoints are rare and
// WAL is kept, so that a test decides when segments are switched.
func StartArchivingPostgres(t testing.TB) (*Postgres, string) {
	t.Helper()
	archive := filepath.Join(Scratch(t, "pgguard-archive-"), "archive")
	if err := os.Mkdir(archive, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Account(t).ChownTree(archive); err != nil {
		t.Fatal(err)
	}
	pg := StartPostgres(t, PGOptions{Conf: []string{
		"archive_mode = on",
		fmt.Sprintf("archive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'", archive, archive),
		"max_wal_size = '1GB'", "checkpoint_timeout = '30min'",
	}})
	return pg, archive
}

// CopyRestoreCommand is the restore_command that fetches WAL from an
// archive made by StartArchivingPostgres.
func CopyRestoreCommand(archive string) string {
	return fmt.Sprintf("cp %s/%%f %%p", archive)
}

// SwitchWALAndWaitArchived closes the current WAL segment and waits (two
// minutes at most) until the archiver reports it archived; it fails with
// the archiver's statistics and the server log otherwise.
func (p *Postgres) SwitchWALAndWaitArchived(t testing.TB) {
	t.Helper()
	seg := p.QueryString(t, "pg_walfile_name(pg_switch_wal())")
	WaitUntil(t, 2*time.Minute, "segment "+seg+" archived", func() (bool, string) {
		last := p.QueryString(t, "coalesce((SELECT last_archived_wal FROM pg_stat_archiver), 'none')")
		failed := p.QueryString(t, "SELECT failed_count || ' failures, last ' || coalesce(last_failed_wal, 'none') FROM pg_stat_archiver")
		return last != "none" && last >= seg, "last_archived_wal=" + last + ", " + failed + "; log tail: " + p.LogTail(600)
	})
}

// RepoConfig is the node configuration (YAML) under which pgguard's
// repository commands (repo init, backup, wal-push, wal-fetch, restore)
// serve one server: the node's name, the server's data directory and
// port, the repository and its key file, and the plaintext local etcd
// endpoint that every node configuration names.
func RepoConfig(name, dataDir string, port int, repoURL, keyFile string) string {
	return fmt.Sprintf(`name: %s
postgresql:
  data_dir: %s
  port: %d
etcd:
  endpoints: ["http://127.0.0.1:2379"]
  allow_plaintext: true
repository:
  url: %s
  key_file: %s
`, name, dataDir, port, repoURL, keyFile)
}

// LockedBuffer is a log destination that goroutines may share: its writes
// and reads hold a lock.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
