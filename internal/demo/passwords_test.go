package demo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/osuser"
)

// The layout's passwords are made once: a second write (another edit of
// the layout, a node added) keeps them, and they come back from the
// password file whatever hosts it names.
func TestLayoutPasswordsAreMadeOnceAndReadBack(t *testing.T) {
	l := NewLayout(filepath.Join(t.TempDir(), "demo"), 2, 24100)
	l.Hosts = map[string][]string{"n1": {"10.0.0.1", "fd00::1"}}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Passwords(); err == nil {
		t.Fatal("a layout without a password file has passwords")
	}
	var acct osuser.Account
	if err := l.writePassFile(acct); err != nil {
		t.Fatal(err)
	}
	first, err := l.Passwords()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Superuser) < 32 || first.Superuser == first.Replication {
		t.Fatalf("passwords %+v: want two different ones of at least 32 characters", first)
	}
	if err := l.writePassFile(acct); err != nil {
		t.Fatal(err)
	}
	again, err := l.Passwords()
	if err != nil || again != first {
		t.Fatalf("a second write changed the passwords: %+v, %v", again, err)
	}
	data, _ := os.ReadFile(l.PGPassFile())
	if !strings.Contains(string(data), `fd00\:\:1:*:*:postgres:`+first.Superuser+"\n") {
		t.Fatalf("an IPv6 host is not escaped:\n%s", data)
	}
	if st, _ := os.Stat(l.PGPassFile()); st.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode %v, want 0600", st.Mode().Perm())
	}
	cfg, err := l.NodeConfig("n1")
	if err != nil || cfg.Postgres.Superuser.Password != first.Superuser || cfg.Postgres.Replication.Password != first.Replication {
		t.Fatalf("n1's configuration does not carry the layout's passwords (%v)", err)
	}
}
