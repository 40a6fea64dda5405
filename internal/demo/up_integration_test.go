package demo_test

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// `pgguard demo up` in a fresh directory, as a person runs it: the cluster
// comes up with generated passwords and TLS, the connection string it
// prints works in psql (libpq) with nothing else set, the passwords
// appear in no output, log or command line, and `demo down` stops it.
func TestDemoUpConnectAndDown(t *testing.T) {
	exe := testcluster.Binary(t)
	parent := testcluster.Scratch(t, "pgguard-demo-it-")
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "demo")
	base, err := demo.FreeBase(2, 20000+10*rand.IntN(900))
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(exe, args...).CombinedOutput()
		return string(out), err
	}
	up, err := run("demo", "up", "--dir", dir, "--nodes", "2", "--base-port", strconv.Itoa(base))
	t.Cleanup(func() {
		if out, err := run("demo", "down", "--dir", dir); err != nil {
			t.Errorf("demo down: %v\n%s", err, out)
		}
	})
	if err != nil {
		l, _ := demo.LoadLayout(dir)
		t.Fatalf("demo up: %v\n%s%s", err, up, testcluster.LogTails(l, l.Nodes, 40))
	}
	l, err := demo.LoadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := run("demo", "dsn", "--dir", dir)
	if err != nil {
		t.Fatalf("demo dsn: %v\n%s", err, dsn)
	}
	dsn = strings.TrimSpace(dsn)
	if !strings.Contains(up, "psql '"+dsn+"'") {
		t.Errorf("demo up does not print the connection string of 'demo dsn' (%s):\n%s", dsn, up)
	}
	for _, want := range []string{"passfile=" + l.PGPassFile(), "sslmode=verify-full"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("the demo's connection string %q lacks %s", dsn, want)
		}
	}
	psql := exec.Command("psql", "-w", "-qXAtc", "CREATE TABLE demo_it (x int); INSERT INTO demo_it VALUES (1); SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", dsn)
	psql.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	out, err := psql.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "t" {
		t.Fatalf("psql with the printed connection string: %v: %s; want a write over TLS", err, out)
	}
	st, err := os.Stat(l.PGPassFile())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the demo's password file: %v (err %v), want mode 0600", st, err)
	}

	pw, err := l.Passwords()
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, n := range l.Nodes {
		for _, f := range []string{"agent.log", "postgres.log"} {
			logs = append(logs, filepath.Join(l.NodeDir(n), f))
		}
	}
	places := map[string]string{"demo up's output": up}
	for _, f := range logs {
		data, _ := os.ReadFile(f)
		places[f] = string(data)
	}
	for _, pid := range []int{l.AgentPID(l.Nodes[0]), l.PostmasterPID(l.Nodes[0]), l.AgentPID(l.Nodes[1]), l.PostmasterPID(l.Nodes[1])} {
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		places["the command line of pid "+strconv.Itoa(pid)] = string(cmdline)
	}
	for where, text := range places {
		for _, secret := range []string{pw.Superuser, pw.Replication} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds a generated password", where)
			}
		}
	}
}
