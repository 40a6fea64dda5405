package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/procfs"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// secretsRun is a demo cluster (TLS, an admin token and password, an
// encrypted repository) and everything seen while operating it.
type secretsRun struct {
	t       *testing.T
	exe     string
	dir     string
	l       demo.Layout
	secrets map[string]string // what -> value
	seen    map[string]string // where -> what was seen there
	https   *http.Client
	pids    map[int]bool // every process the run started
	// issuedAt is where a secret is handed out by design (a new user's
	// token, a login's session): the one place it may appear.
	issuedAt map[string]string
}

// SEC-1 (issue 15, item 7): a TLS cluster with known secrets, operated
// through the CLI and the API; no secret may appear in a log file, a
// history entry, an API answer, a metrics page, an error message or the
// command line of any process it started.
func TestNoSecretLeaksThroughTheOperatorSurface(t *testing.T) {
	parent, err := os.MkdirTemp("", "pgguard-secrets-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(parent, 0o755) // the database account must reach the demo's directory
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	r := &secretsRun{t: t, exe: testcluster.Binary(t), dir: filepath.Join(parent, "demo"), secrets: map[string]string{}, seen: map[string]string{}, pids: map[int]bool{}, issuedAt: map[string]string{}}
	base, err := demo.FreeBase(3, 20000+10*int(time.Now().UnixNano()%900))
	if err != nil {
		t.Fatal(err)
	}
	up := r.cli("demo", "up", "--dir", r.dir, "--base-port", strconv.Itoa(base))
	t.Cleanup(func() { _ = exec.Command(r.exe, "demo", "down", "--dir", r.dir).Run() })
	if !strings.Contains(up, "healthy after") {
		t.Fatalf("demo up:\n%s", up)
	}
	if r.l, err = demo.LoadLayout(r.dir); err != nil {
		t.Fatal(err)
	}
	r.collectSecrets()
	roots, err := certs.RootsConfig(certs.CAFile(r.l.CertsDir()))
	if err != nil {
		t.Fatal(err)
	}
	r.https = &http.Client{Transport: &http.Transport{TLSClientConfig: roots}, Timeout: 2 * time.Minute}
	admin := r.secrets["admin token"]

	// The endpoints a script needs.
	var e demo.Endpoints
	if err := json.Unmarshal([]byte(r.cli("demo", "endpoints", "--dir", r.dir, "-o", "json")), &e); err != nil || len(e.API) != 3 || len(e.Metrics) != 3 || e.Console == "" || e.TokenFile != r.l.TokenFile() {
		t.Fatalf("demo endpoints -o json: %+v (%v)", e, err)
	}

	// Operate through the CLI (store and API) and the API.
	ctlAPI := r.l.CtlAPIPath()
	operatorOut := r.cli("ctl", "-c", ctlAPI, "users", "add", "olga", "--role", "operator", "-o", "json")
	var nu struct{ Token string }
	if err := json.Unmarshal([]byte(operatorOut), &nu); err != nil || nu.Token == "" {
		t.Fatalf("users add: %s", operatorOut)
	}
	r.secrets["operator token"] = nu.Token
	r.issuedAt["operator token"] = "pgguard ctl -c " + ctlAPI + " users add olga --role operator -o json"
	for _, args := range [][]string{
		{"ctl", "-c", ctlAPI, "status"},
		{"ctl", "-c", ctlAPI, "switchover", "--check"},
		{"ctl", "-c", ctlAPI, "switchover", "--yes"},
		{"ctl", "-c", ctlAPI, "pause"},
		{"ctl", "-c", ctlAPI, "resume"},
		{"ctl", "-c", ctlAPI, "takeover", "--check"},
		{"ctl", "-c", ctlAPI, "restart", "--rolling", "--check"},
		{"ctl", "-c", ctlAPI, "history"},
		{"ctl", "-c", ctlAPI, "explain", "last"},
		{"ctl", "-c", ctlAPI, "users", "list"},
		{"jobs", "-c", ctlAPI, "list"},
		{"jobs", "-c", ctlAPI, "create", "leak-check", "--kind", "full", "--schedule", "daily@02:00"},
		{"jobs", "-c", ctlAPI, "start", "leak-check"},
		{"ctl", "-c", filepath.Join(r.dir, "ctl.yaml"), "status"},
		{"backups", "-c", r.l.ConfigPath("n1")},
	} {
		r.cli(args...)
	}
	for _, c := range []struct{ method, path, token, body string }{
		{"GET", "/api/v1/cluster", admin, ""},
		{"GET", "/api/v1/history", admin, ""},
		{"GET", "/api/v1/explain/last", admin, ""},
		{"GET", "/api/v1/config", admin, ""},
		{"GET", "/api/v1/jobs", admin, ""},
		{"GET", "/api/v1/backups", admin, ""},
		{"GET", "/api/v1/drills", admin, ""},
		{"GET", "/api/v1/users", admin, ""},
		{"POST", "/api/v1/switchover?dry_run=1", nu.Token, "{}"},
		{"POST", "/api/v1/switchover", nu.Token, "{}"},
		{"POST", "/api/v1/backups", nu.Token, `{"kind":"full"}`},
		{"POST", "/api/v1/drills", nu.Token, `{}`},
		{"POST", "/api/v1/takeover", nu.Token, `{}`},                                    // 403
		{"POST", "/api/v1/switchover", nu.Token + "x", `{}`},                            // 401
		{"POST", "/api/v1/login", "", `{"user":"admin","password":"not the password"}`}, // 401
		{"PATCH", "/api/v1/config?dry_run=1", admin, `{"mode":"sync"}`},
		{"POST", "/api/v1/nodes/n2/reinit?dry_run=1", admin, `{}`},
		{"POST", "/api/v1/restore-cluster?dry_run=1", admin, `{"immediate":true}`},
	} {
		r.api(c.method, c.path, c.token, c.body)
	}
	pw := r.secrets["admin password"]
	var s struct{ Token string }
	if err := json.Unmarshal([]byte(r.api("POST", "/api/v1/login", "", fmt.Sprintf(`{"user":"admin","password":%q}`, pw))), &s); err != nil || s.Token == "" {
		t.Fatal("the admin could not log in")
	}
	r.secrets["session token"] = s.Token
	r.issuedAt["session token"] = "POST /api/v1/login"
	r.api("GET", "/api/v1/whoami", s.Token, "")
	for i, u := range e.Metrics {
		if page := r.get(fmt.Sprintf("metrics of n%d", i+1), u); !strings.Contains(page, "pgguard_role") {
			t.Fatalf("%s is not a metrics page:\n%.500s", u, page)
		}
	}
	for _, n := range r.l.Nodes {
		r.get("health of "+n, apiOf(e.API, n, r.l.Nodes)+"/health")
	}
	r.collectProcesses()
	r.collectFiles()
	r.search()
}

func apiOf(urls []string, node string, nodes []string) string {
	for i, n := range nodes {
		if n == node {
			return urls[i]
		}
	}
	return urls[0]
}

// cli runs pgguard and keeps its output (errors included).
func (r *secretsRun) cli(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.exe, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.pids[cmd.Process.Pid] = true
	_ = cmd.Wait()
	r.seen["pgguard "+strings.Join(args, " ")] = out.String()
	return out.String()
}

func (r *secretsRun) api(method, path, token, body string) string {
	r.t.Helper()
	req, err := http.NewRequest(method, r.l.ClientEndpoints().API[0]+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return r.do(method+" "+path, req)
}

func (r *secretsRun) get(what, url string) string {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.do(what, req)
}

func (r *secretsRun) do(what string, req *http.Request) string {
	resp, err := r.https.Do(req)
	if err != nil {
		r.seen[what+" (error)"] = err.Error()
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var hdr strings.Builder
	_ = resp.Header.Write(&hdr)
	r.seen[what] = hdr.String() + string(b)
	return string(b)
}

// collectSecrets reads every secret the demo holds: tokens, passwords,
// the repository's passphrase, every private key.
func (r *secretsRun) collectSecrets() {
	read := func(what, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			r.t.Fatalf("%s: %v", what, err)
		}
		r.secrets[what] = strings.TrimSpace(string(b))
	}
	read("admin token", r.l.TokenFile())
	read("admin password", r.l.PasswordFile())
	read("repository passphrase", r.l.KeyFile())
	keys, _ := filepath.Glob(filepath.Join(r.l.CertsDir(), "*.key"))
	for _, k := range keys {
		b, _ := os.ReadFile(k)
		// The key's base64 body, one line of it at least 40 characters.
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
				r.secrets["private key "+filepath.Base(k)] = line
				break
			}
		}
	}
	for _, n := range r.l.Nodes {
		data, _ := os.ReadFile(r.l.ConfigPath(n))
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "password: "); ok && k == "" && len(strings.Trim(v, `"' `)) >= 8 {
				r.secrets["password in "+n+"'s node.yaml"] = strings.Trim(v, `"' `)
			}
		}
	}
	if len(r.secrets) < 6 {
		r.t.Fatalf("only %d secrets found: %v", len(r.secrets), keysOf(r.secrets))
	}
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// collectProcesses reads the command line of every live process
// descended from the agents (postgres, walsenders, archive and job
// children) and of every process the run started.
func (r *secretsRun) collectProcesses() {
	for _, n := range r.l.Nodes {
		if pid := r.l.AgentPID(n); pid > 0 {
			r.pids[pid] = true
		}
	}
	parent := procfs.Parents()
	descends := func(pid int) bool {
		for p := pid; p > 1; p = parent[p] {
			if r.pids[p] {
				return true
			}
		}
		return false
	}
	n := 0
	for pid := range parent {
		if !descends(pid) {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil {
			r.seen[fmt.Sprintf("/proc/%d/cmdline", pid)] = string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			n++
		}
	}
	if n < 9 { // three agents, three postmasters and their workers at least
		r.t.Fatalf("only %d processes of the cluster found", n)
	}
}

// collectFiles reads every log the cluster wrote and the history.
func (r *secretsRun) collectFiles() {
	logs := 0
	_ = filepath.Walk(r.dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && (strings.HasSuffix(path, ".log") || strings.Contains(path, "/log/")) {
			b, _ := os.ReadFile(path)
			r.seen[path] = string(b)
			logs++
		}
		return nil
	})
	if logs < 9 {
		r.t.Fatalf("only %d log files found under %s", logs, r.dir)
	}
	r.seen["history"] = r.api("GET", "/api/v1/history", r.secrets["admin token"], "")
	if !strings.Contains(r.seen["history"], "switchover-request") || !strings.Contains(r.seen["history"], "api-refused") {
		r.t.Fatalf("the history lacks the run's operations:\n%.2000s", r.seen["history"])
	}
}

func (r *secretsRun) search() {
	for what, secret := range r.secrets {
		for where, text := range r.seen {
			if strings.Contains(text, secret) && r.issuedAt[what] != where {
				r.t.Errorf("the %s appears in %s", what, where)
			}
		}
	}
	r.t.Logf("%d secrets searched for in %d places (logs, history, API answers, metrics pages, CLI output, process command lines)", len(r.secrets), len(r.seen))
}
