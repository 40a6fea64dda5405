package demo

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/certs"
)

// HAProxyConfig is the configuration the demo runs HAProxy with: a
// read-write port that reaches the node whose /primary answers 200, and a
// read-only port balanced over the nodes whose /replica?lag=16MB does.
// docs/examples/haproxy.cfg is the same for hand-written clusters; the
// stats socket is the demo's own, for StartHAProxy to see the first checks.
func (l Layout) HAProxyConfig() (string, error) {
	if len(l.HAProxy) != 2 || len(l.API) < len(l.Nodes) {
		return "", errors.New("this demo has no HAProxy ports (start it with 'pgguard demo up --haproxy')")
	}
	var b strings.Builder
	b.WriteString(`# Written by pgguard demo. Every agent answers health checks on its API
# port; HAProxy sends PostgreSQL connections to the nodes whose check passes.
global
    maxconn 500
    stats socket ` + l.haproxySocket() + ` mode 600 level user

defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s
    # Check every 250 ms; a node fails after two failed checks and is back
    # after one good one. Sessions to a node marked down are cut at once,
    # so no client keeps writing to a former primary.
    default-server inter 250ms fastinter 250ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions
`)
	section := func(name string, port int, check, balance string) {
		fmt.Fprintf(&b, "\nlisten %s\n    bind 127.0.0.1:%d\n    option httpchk GET %s\n    http-check expect status 200\n", name, port, check)
		if balance != "" {
			fmt.Fprintf(&b, "    balance %s\n", balance)
		}
		ssl := ""
		if l.HTTPS() {
			ssl = " check-ssl verify required ca-file " + certs.CAFile(l.CertsDir())
		}
		for i, n := range l.Nodes {
			fmt.Fprintf(&b, "    server %s 127.0.0.1:%d check port %d%s\n", n, l.PGPorts[i], l.API[i], ssl)
		}
	}
	section("postgres_rw", l.HAProxy[0], "/primary", "")
	section("postgres_ro", l.HAProxy[1], "/replica?lag=16MB", "roundrobin")
	return b.String(), nil
}

func (l Layout) haproxyPIDFile() string { return filepath.Join(l.Dir, "haproxy.pid") }

// HAProxyPID is the PID of the demo's HAProxy if it runs.
func (l Layout) HAProxyPID() int { return livePID(l.haproxyPIDFile(), "haproxy") }

// StartHAProxy writes DIR/haproxy.cfg and starts Debian's HAProxy with it
// in the foreground of its own session (so that its PID is the one
// recorded), logging to DIR/haproxy.log.
func (l Layout) StartHAProxy() (int, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return 0, errors.New("haproxy is not installed: apt-get install -y haproxy (make setup does)")
	}
	if pid := l.HAProxyPID(); pid > 0 {
		return pid, fmt.Errorf("HAProxy already runs (pid %d)", pid)
	}
	cfg, err := l.HAProxyConfig()
	if err != nil {
		return 0, err
	}
	path := filepath.Join(l.Dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return 0, err
	}
	if out, err := exec.Command(bin, "-c", "-q", "-f", path).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("haproxy refuses %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	logf, err := os.OpenFile(filepath.Join(l.Dir, "haproxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start haproxy: %w", err)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(l.haproxyPIDFile(), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return pid, err
	}
	// HAProxy (2.6; init-state arrived in 3.1) takes every server to be
	// up until its first check fails: until then the read-write port
	// can lead to a standby, and a session opened there is cut when the
	// check marks it down. Return only once HAProxy routes by checks.
	if err := waitFirstChecks(l.haproxySocket(), 10*time.Second); err != nil {
		return pid, fmt.Errorf("haproxy (pid %d, log %s): %w", pid, filepath.Join(l.Dir, "haproxy.log"), err)
	}
	return pid, nil
}

// haproxySocket is where the demo's HAProxy answers "show stat": in the
// demo's directory, or in the temporary directory when that path would
// not fit a Unix socket's 108 bytes.
func (l Layout) haproxySocket() string {
	if p := filepath.Join(l.Dir, "haproxy.sock"); len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(l.Dir))
	return filepath.Join(os.TempDir(), fmt.Sprintf("pgguard-haproxy-%x.sock", sum[:6]))
}

// waitFirstChecks polls HAProxy's stats socket until every server's first
// health check has finished and its state agrees with that check's
// result (up after a passed check, down after a failed one).
func waitFirstChecks(socket string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for {
		rows, err := haproxyStat(socket)
		if err != nil {
			last = err.Error()
		} else if pending := uncheckedServers(rows); len(pending) > 0 {
			last = "first checks pending: " + strings.Join(pending, ", ")
		} else {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("HAProxy did not finish its first health checks within %s (last seen: %s)", timeout, last)
		}
		time.Sleep(50 * time.Millisecond) // polling HAProxy's check results
	}
}

// haproxyStat asks HAProxy's stats socket for "show stat" and returns its
// CSV rows as maps from column name to value.
func haproxyStat(socket string) ([]map[string]string, error) {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return nil, err
	}
	return parseStat(string(out))
}

// parseStat reads "show stat" output: a header line "# pxname,svname,…"
// and one CSV row per proxy and server.
func parseStat(out string) ([]map[string]string, error) {
	header, body, ok := strings.Cut(out, "\n")
	if !ok || !strings.HasPrefix(header, "# ") {
		return nil, fmt.Errorf("unexpected answer to show stat: %q", header)
	}
	cols := strings.Split(strings.TrimPrefix(header, "# "), ",")
	var rows []map[string]string
	for _, line := range strings.Split(body, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		row := map[string]string{}
		for i, v := range strings.Split(line, ",") {
			if i < len(cols) {
				row[cols[i]] = v
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// uncheckedServers names the servers ("proxy/server") whose first check
// has not finished, or whose state does not yet follow it.
func uncheckedServers(rows []map[string]string) []string {
	var pending []string
	for _, r := range rows {
		if r["svname"] == "FRONTEND" || r["svname"] == "BACKEND" {
			continue
		}
		check := strings.TrimPrefix(r["check_status"], "* ")
		up := strings.HasPrefix(r["status"], "UP")
		if check == "" || check == "INI" || up != (check == "L7OK") {
			pending = append(pending, fmt.Sprintf("%s/%s %s after %q", r["pxname"], r["svname"], r["status"], check))
		}
	}
	return pending
}

// StopHAProxy ends the demo's HAProxy (if it runs) and waits for it.
func (l Layout) StopHAProxy(timeout time.Duration) error {
	pid := l.HAProxyPID()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && l.HAProxyPID() > 0 {
		time.Sleep(50 * time.Millisecond) // polling the process table, not a state of the cluster
	}
	if l.HAProxyPID() > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("HAProxy (pid %d) did not stop within %s and was killed", pid, timeout)
	}
	return nil
}

// Endpoints are where clients and scripts reach the demo (absent: not
// running).
type Endpoints struct {
	API []string `json:"api"`
	// Metrics are the agents' Prometheus pages; Console is the web
	// console (any agent serves it; the first's); TokenFile holds the
	// demo's admin token, CAFile the CA that signed the agents' HTTPS
	// certificates.
	Metrics   []string `json:"metrics"`
	Console   string   `json:"console"`
	TokenFile string   `json:"token_file,omitempty"`
	CAFile    string   `json:"ca_file,omitempty"`
	RW        string   `json:"rw,omitempty"`
	RO        string   `json:"ro,omitempty"`
	HAProxyRW string   `json:"haproxy_rw,omitempty"`
	HAProxyRO string   `json:"haproxy_ro,omitempty"`
}

// WriteText prints the endpoints one per line; nodes names the agents in
// the order of API.
func (e Endpoints) WriteText(w io.Writer, nodes []string) error {
	for i, u := range e.API {
		fmt.Fprintf(w, "api %-4s %s   metrics %s\n", nodes[i], u, e.Metrics[i])
	}
	fmt.Fprintf(w, "console  %s\n", e.Console)
	if e.TokenFile != "" {
		fmt.Fprintf(w, "admin token in %s\n", e.TokenFile)
	}
	if e.RW != "" {
		fmt.Fprintf(w, "built-in proxies: read-write %s, read-only %s\n", e.RW, e.RO)
	}
	if e.HAProxyRW != "" {
		fmt.Fprintf(w, "haproxy read-write %s, read-only %s\n", e.HAProxyRW, e.HAProxyRO)
	}
	return nil
}

// ClientEndpoints lists the API URL of every database node, the built-in
// proxies' ports as libpq host lists (rw, ro) when the demo runs them, and
// HAProxy's ports when it runs.
func (l Layout) ClientEndpoints() Endpoints {
	e := Endpoints{API: []string{}, Metrics: []string{}}
	var rw, ro []string
	for i, p := range l.API {
		if l.IsWitness(l.Nodes[i]) {
			continue
		}
		base := fmt.Sprintf("%s://127.0.0.1:%d", l.APIScheme(), p)
		e.API = append(e.API, base)
		e.Metrics = append(e.Metrics, base+"/metrics")
		if e.Console == "" {
			e.Console = base + "/"
		}
		if i < len(l.ProxyRW) {
			rw = append(rw, fmt.Sprintf("127.0.0.1:%d", l.ProxyRW[i]))
			ro = append(ro, fmt.Sprintf("127.0.0.1:%d", l.ProxyRO[i]))
		}
	}
	e.RW, e.RO = strings.Join(rw, ","), strings.Join(ro, ",")
	if _, err := os.Stat(l.TokenFile()); err == nil {
		e.TokenFile = l.TokenFile()
	}
	if l.HTTPS() {
		e.CAFile = certs.CAFile(l.CertsDir())
	}
	if len(l.HAProxy) == 2 && l.HAProxyPID() > 0 {
		e.HAProxyRW = fmt.Sprintf("127.0.0.1:%d", l.HAProxy[0])
		e.HAProxyRO = fmt.Sprintf("127.0.0.1:%d", l.HAProxy[1])
	}
	return e
}
