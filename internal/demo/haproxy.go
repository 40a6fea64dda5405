package demo

import (
	"errors"
	"fmt"
	"io"
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
// docs/examples/haproxy.cfg is the same for hand-written clusters.
func (l Layout) HAProxyConfig() (string, error) {
	if len(l.HAProxy) != 2 || len(l.API) < len(l.Nodes) {
		return "", errors.New("this demo has no HAProxy ports (start it with 'pgguard demo up --haproxy')")
	}
	var b strings.Builder
	b.WriteString(`# Written by pgguard demo. Every agent answers health checks on its API
# port; HAProxy sends PostgreSQL connections to the nodes whose check passes.
global
    maxconn 500

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
	return pid, nil
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
