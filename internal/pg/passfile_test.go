package pg_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/pg"
)

// Issue 13: the passfile gives the passwords to this instance's own
// address and port and to the members the agent connects to, each at its
// port, and to nothing else (no '*' host or port).
func TestPassFilePinsHostsAndPorts(t *testing.T) {
	inst := pg.New(pg.Options{DataDir: filepath.Join(t.TempDir(), "data"), ListenAddress: "*", Port: 5432,
		Superuser: "postgres", SuperPassword: "su:pw", ReplUser: "replicator", ReplPassword: `re\pw`})
	read := func() string {
		t.Helper()
		data, err := os.ReadFile(inst.PassFile())
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if err := inst.WritePassFile(); err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:5432:*:postgres:su\\:pw\n127.0.0.1:5432:*:replicator:re\\\\pw\n"
	if got := read(); !samelines(got, want) {
		t.Fatalf("passfile before any member:\n%s\nwant\n%s", got, want)
	}
	for _, up := range []pg.Upstream{{Name: "n2", Host: "10.0.0.2", Port: 5433}, {Name: "n3", Host: "fe80::3", Port: 5432}, {Name: "n2", Host: "10.0.0.2", Port: 5433}} {
		if err := inst.PinPeer(up); err != nil {
			t.Fatal(err)
		}
	}
	got := read()
	for _, line := range []string{"10.0.0.2:5433:*:replicator:re\\\\pw", "10.0.0.2:5433:*:postgres:su\\:pw", `fe80\:\:3:5432:*:postgres:su\:pw`} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("passfile lacks %q:\n%s", line, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 6 {
		t.Errorf("passfile has %d lines, want 6 (three endpoints, two roles each, no duplicate):\n%s", n, got)
	}
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if strings.HasPrefix(l, "*:") || strings.Contains(l, ":*:*:") {
			t.Errorf("a passfile line leaves the host or the port open: %q", l)
		}
	}
}

func samelines(a, b string) bool {
	sa, sb := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	if len(sa) != len(sb) {
		return false
	}
	seen := map[string]int{}
	for _, l := range sa {
		seen[l]++
	}
	for _, l := range sb {
		if seen[l]--; seen[l] < 0 {
			return false
		}
	}
	return true
}
