// Package demo lays out and runs a whole pgguard cluster on this machine:
// one directory per node with its node.yaml, each agent its own OS process
// (with its own embedded etcd member and PostgreSQL on loopback ports). The
// `pgguard demo` command and the integration tests both use it.
//
// It only ever signals the processes it started, found by the PIDs it
// recorded.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/status"
	"gopkg.in/yaml.v3"
)

// Layout describes a local cluster.
type Layout struct {
	Dir     string   `json:"dir"`
	Cluster string   `json:"cluster"`
	Nodes   []string `json:"nodes"`
	PGPorts []int    `json:"pg_ports"`
	Client  []int    `json:"etcd_client_ports"`
	Peer    []int    `json:"etcd_peer_ports"`
	// API are the agents' HTTP ports (health endpoints, /cluster).
	API []int `json:"api_ports,omitempty"`
	// HAProxy is [rw, ro] when the demo runs HAProxy in front of the
	// nodes (empty otherwise).
	HAProxy []int `json:"haproxy_ports,omitempty"`
	// ProxyRW and ProxyRO are the agents' built-in proxy ports (empty when
	// the demo runs without them).
	ProxyRW []int `json:"proxy_rw_ports,omitempty"`
	ProxyRO []int `json:"proxy_ro_ports,omitempty"`
	// Witnesses are nodes that run only an etcd member (no PostgreSQL).
	Witnesses []string `json:"witnesses,omitempty"`
	External  []string `json:"external_etcd,omitempty"`
	// TLS secures the store with certificates made in CertsDir (the
	// default); an external store of a test is plaintext.
	TLS bool `json:"tls"`
	// Hosts are addresses to put in each node's certificate besides
	// loopback (the chaos suite's namespace addresses).
	Hosts map[string][]string `json:"hosts,omitempty"`
}

// NewLayout assigns ports from base: PostgreSQL on base+i, etcd client on
// base-3000+2i and peer on base-3000+2i+1, the agents' API on base+3000+i
// (all below 32768 for a base below MaxBase).
func NewLayout(dir string, nodes int, base int) Layout {
	l := Layout{Dir: dir, Cluster: "demo", TLS: true}
	for i := 0; i < nodes; i++ {
		l.Nodes = append(l.Nodes, fmt.Sprintf("n%d", i+1))
		l.PGPorts = append(l.PGPorts, base+i)
		l.Client = append(l.Client, base-3000+2*i)
		l.Peer = append(l.Peer, base-3000+2*i+1)
		l.API = append(l.API, base+3000+i)
	}
	return l
}

// AddWitness makes the layout's last node a witness named w1: it votes in
// the store and runs no PostgreSQL.
func (l *Layout) AddWitness() {
	last := len(l.Nodes) - 1
	l.Nodes[last] = "w1"
	l.Witnesses = []string{"w1"}
}

// IsWitness reports whether node is one of the layout's witnesses.
func (l Layout) IsWitness(node string) bool {
	for _, w := range l.Witnesses {
		if w == node {
			return true
		}
	}
	return false
}

// WithProxy gives every node's agent a built-in proxy: read-write on
// base+3200+i, read-only on base+3300+i.
func (l *Layout) WithProxy() {
	l.ProxyRW, l.ProxyRO = nil, nil
	for i := range l.Nodes {
		l.ProxyRW = append(l.ProxyRW, l.PGPorts[0]+3200+i)
		l.ProxyRO = append(l.ProxyRO, l.PGPorts[0]+3300+i)
	}
}

// MaxBase is the highest base port whose layout (the API ports of nine
// nodes included) stays below the ephemeral range.
const MaxBase = 29700

// WithHAProxy gives the layout HAProxy's read-write and read-only ports
// (base-1000 and base-999).
func (l *Layout) WithHAProxy() {
	base := l.PGPorts[0]
	l.HAProxy = []int{base - 1000, base - 999}
}

// FreeBase finds a base port in [from, MaxBase) whose whole layout is free.
func FreeBase(nodes, from int) (int, error) {
	for base := from; base < MaxBase-nodes; base += 10 {
		l := NewLayout("", nodes, base)
		if l.CheckPortsFree() == nil {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free block of ports below %d", MaxBase)
}

// CheckPortsFree reports the first port of the layout already in use.
func (l Layout) CheckPortsFree() error {
	for _, group := range [][]int{l.PGPorts, l.Client, l.Peer, l.API, l.HAProxy, l.ProxyRW, l.ProxyRO} {
		for _, p := range group {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				return fmt.Errorf("port %d on 127.0.0.1 is in use: choose another --base-port", p)
			}
			ln.Close()
		}
	}
	return nil
}

func (l Layout) index(node string) (int, error) {
	for i, n := range l.Nodes {
		if n == node {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown node %q: this demo has %s", node, strings.Join(l.Nodes, ", "))
}

// NodeDir is the directory of one node.
func (l Layout) NodeDir(node string) string { return filepath.Join(l.Dir, node) }

// ConfigPath is the node.yaml of one node.
func (l Layout) ConfigPath(node string) string { return filepath.Join(l.NodeDir(node), "node.yaml") }

// Endpoints lists the etcd client URLs.
func (l Layout) Endpoints() []string {
	if len(l.External) > 0 {
		return l.External
	}
	var out []string
	for _, p := range l.Client {
		out = append(out, fmt.Sprintf("%s://127.0.0.1:%d", l.scheme(), p))
	}
	return out
}

// DSN is a libpq multi-host connection string that always reaches the
// primary.
func (l Layout) DSN() string {
	var hosts, ports []string
	for i, n := range l.Nodes {
		if l.IsWitness(n) {
			continue
		}
		hosts = append(hosts, "127.0.0.1")
		ports = append(ports, strconv.Itoa(l.PGPorts[i]))
	}
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2",
		strings.Join(hosts, ","), strings.Join(ports, ","))
}

// NodeConfig returns the configuration of one node.
func (l Layout) NodeConfig(node string) (config.Config, error) {
	i, err := l.index(node)
	if err != nil {
		return config.Config{}, err
	}
	c := config.Default()
	c.Cluster, c.Name = l.Cluster, node
	c.Witness = l.IsWitness(node)
	c.Postgres.DataDir = filepath.Join(l.NodeDir(node), "data")
	c.Postgres.Port = l.PGPorts[i]
	c.Postgres.BinDir = config.DetectBinDir()
	c.Postgres.ConnectAddress = "127.0.0.1"
	c.Postgres.Parameters = map[string]string{"shared_buffers": "64MB", "max_connections": "50", "fsync": "on"}
	if i < len(l.API) {
		c.API.Listen = fmt.Sprintf("127.0.0.1:%d", l.API[i])
	}
	if i < len(l.ProxyRW) && !l.IsWitness(node) {
		c.Proxy.RWListen = fmt.Sprintf("127.0.0.1:%d", l.ProxyRW[i])
		c.Proxy.ROListen = fmt.Sprintf("127.0.0.1:%d", l.ProxyRO[i])
	}
	if len(l.External) > 0 {
		c.Etcd.Endpoints = l.External
		c.Etcd.AllowPlaintext = true
		return c, nil
	}
	if l.TLS {
		c.Etcd.TLS = l.tlsFiles(node)
	} else {
		c.Etcd.AllowPlaintext = true
	}
	var peers []string
	for j, n := range l.Nodes {
		peers = append(peers, fmt.Sprintf("%s=%s://127.0.0.1:%d", n, l.scheme(), l.Peer[j]))
	}
	c.Etcd.Embed.DataDir = filepath.Join(l.NodeDir(node), "etcd")
	c.Etcd.Embed.ClientURL = fmt.Sprintf("%s://127.0.0.1:%d", l.scheme(), l.Client[i])
	c.Etcd.Embed.PeerURL = fmt.Sprintf("%s://127.0.0.1:%d", l.scheme(), l.Peer[i])
	c.Etcd.Embed.InitialCluster = strings.Join(peers, ",")
	return c, nil
}

// Write creates the directories and files of the layout, owned by acct.
// edit may change each node's configuration before it is written.
func (l Layout) Write(acct osuser.Account, edit func(*config.Config)) error {
	if err := acct.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", l.Dir, err)
	}
	if err := checkTraversable(l.Dir, acct); err != nil {
		return err
	}
	if err := l.writeCerts(acct); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		c, err := l.NodeConfig(n)
		if err != nil {
			return err
		}
		if edit != nil {
			edit(&c)
		}
		if err := c.Validate(); err != nil {
			return fmt.Errorf("node %s: %w", n, err)
		}
		if err := acct.MkdirAll(l.NodeDir(n), 0o700); err != nil {
			return err
		}
		data, err := yaml.Marshal(c)
		if err != nil {
			return err
		}
		if err := os.WriteFile(l.ConfigPath(n), data, 0o600); err != nil {
			return err
		}
		if err := acct.ChownTree(l.ConfigPath(n)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "ctl.yaml"), []byte(l.CtlYAML(l.Endpoints(), "")), 0o644); err != nil {
		return err
	}
	state, _ := json.MarshalIndent(l, "", "  ")
	return os.WriteFile(filepath.Join(l.Dir, "demo.json"), state, 0o644)
}

// checkTraversable makes sure the database account can reach dir.
func checkTraversable(dir string, acct osuser.Account) error {
	if !acct.Switch {
		return nil
	}
	abs, _ := filepath.Abs(dir)
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != acct.UID && fi.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("%s is not searchable by user %s, who runs PostgreSQL: choose a directory such as /tmp/pgguard-demo", p, acct.Name)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// LoadLayout reads the layout a previous Write left in dir.
func LoadLayout(dir string) (Layout, error) {
	data, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		return Layout{}, fmt.Errorf("no demo cluster in %s (run 'pgguard demo up --dir %s' first): %w", dir, dir, err)
	}
	var l Layout
	if err := json.Unmarshal(data, &l); err != nil {
		return Layout{}, fmt.Errorf("read %s/demo.json: %w", dir, err)
	}
	return l, nil
}

// StartNode launches the agent of node in the background, detached from
// this process (its own session), logging to the node's agent.log.
func (l Layout) StartNode(exe, node string) (int, error) {
	if _, err := l.index(node); err != nil {
		return 0, err
	}
	if pid := l.AgentPID(node); pid > 0 {
		return pid, fmt.Errorf("node %s already runs (agent pid %d)", node, pid)
	}
	logf, err := os.OpenFile(filepath.Join(l.NodeDir(node), "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "agent", "-c", l.ConfigPath(node))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start agent %s: %w", node, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it exits while we are still running (tests).
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(l.pidFile(node), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return pid, err
	}
	return pid, nil
}

func (l Layout) pidFile(node string) string { return filepath.Join(l.NodeDir(node), "agent.pid") }

// AgentPID is the recorded PID of node's agent if that process is alive.
func (l Layout) AgentPID(node string) int {
	return livePID(l.pidFile(node), "pgguard")
}

// PostmasterPID is the PID in node's postmaster.pid if it is a live postgres.
func (l Layout) PostmasterPID(node string) int {
	return livePID(filepath.Join(l.NodeDir(node), "data", "postmaster.pid"), "postgres")
}

// livePID reads the first line of file as a PID and returns it if that
// process is alive (not a zombie) and its command name starts with comm.
func livePID(file, comm string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(stat)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < 0 || end+2 >= len(s) {
		return 0
	}
	if st := s[end+2]; st == 'Z' || st == 'X' {
		return 0
	}
	if !strings.HasPrefix(s[open+1:end], comm) {
		return 0
	}
	return pid
}

// KillNode simulates the loss of node's host: SIGKILL to its agent (and so
// its embedded etcd member) and to its postmaster.
func (l Layout) KillNode(node string) error {
	if _, err := l.index(node); err != nil {
		return err
	}
	agent, pm := l.AgentPID(node), l.PostmasterPID(node)
	if agent == 0 && pm == 0 {
		return fmt.Errorf("node %s is not running", node)
	}
	if agent > 0 {
		_ = syscall.Kill(agent, syscall.SIGKILL)
	}
	if pm > 0 {
		// The postmaster leads its own process group (the agent starts it
		// so); killing the group takes every backend down with it, as a
		// host loss would, instead of leaving them to notice later.
		if pgid, err := syscall.Getpgid(pm); err == nil && pgid == pm {
			_ = syscall.Kill(-pm, syscall.SIGKILL)
		} else {
			_ = syscall.Kill(pm, syscall.SIGKILL)
		}
	}
	return nil
}

// KillAgent kills only node's agent (its embedded etcd member dies with
// it; PostgreSQL is shut down by the kernel's parent-death signal).
func (l Layout) KillAgent(node string) error {
	agent := l.AgentPID(node)
	if agent == 0 {
		return fmt.Errorf("node %s has no running agent", node)
	}
	return syscall.Kill(agent, syscall.SIGKILL)
}

// KillPostmaster kills only node's postmaster (a crash of PostgreSQL).
func (l Layout) KillPostmaster(node string) error {
	pm := l.PostmasterPID(node)
	if pm == 0 {
		return fmt.Errorf("node %s has no running postmaster", node)
	}
	return syscall.Kill(pm, syscall.SIGKILL)
}

// StopNode asks node's agent to stop (it shuts PostgreSQL down first) and
// waits; after timeout it kills what is left.
func (l Layout) StopNode(node string, timeout time.Duration) error {
	agent := l.AgentPID(node)
	if agent > 0 {
		_ = syscall.Kill(agent, syscall.SIGTERM)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && (l.AgentPID(node) > 0 || l.PostmasterPID(node) > 0) {
		time.Sleep(100 * time.Millisecond)
	}
	if l.AgentPID(node) > 0 || l.PostmasterPID(node) > 0 {
		_ = l.KillNode(node)
		return fmt.Errorf("node %s did not stop within %s and was killed", node, timeout)
	}
	return nil
}

// Status reads the cluster's status report from the store (without the
// store's own members: this is what polling loops call).
func (l Layout) Status(ctx context.Context) (status.Report, error) {
	return l.status(ctx, false)
}

// StatusWithStore is Status with every etcd member asked for its own
// status, as `ctl status` shows it.
func (l Layout) StatusWithStore(ctx context.Context) (status.Report, error) {
	return l.status(ctx, true)
}

func (l Layout) status(ctx context.Context, withStore bool) (status.Report, error) {
	store, err := l.OpenStore()
	if err != nil {
		return status.Report{}, err
	}
	defer store.Close()
	return ReadStatus(ctx, store, l.Cluster, withStore)
}

// ReadStatus builds a status report from an open store; withStore also
// asks every etcd member for its own status (a connection to each).
func ReadStatus(ctx context.Context, store *dcs.Store, cluster string, withStore bool) (status.Report, error) {
	// The store's members first: a dead one costs a Status timeout, and
	// the cluster read after it is then the fresher of the two.
	var members []dcs.StoreMember
	if withStore {
		members, _ = store.Members(ctx)
	}
	c, err := store.Load(ctx)
	if err != nil {
		return status.Report{}, err
	}
	ttl, _ := store.LeaderLease(ctx)
	r := status.Build(cluster, c, ttl, time.Now())
	for _, m := range members {
		r.Store = append(r.Store, status.StoreMember{Name: m.Name, Reachable: m.Reachable, Leader: m.Leader, RaftIndex: m.RaftIndex, Error: m.Error})
	}
	return r, nil
}

// WaitHealthy polls until one primary leads and every other node streams,
// or the deadline passes; the error then says what was last seen.
func (l Layout) WaitHealthy(ctx context.Context, timeout time.Duration, progress func(status.Report)) (status.Report, error) {
	return l.WaitHealthyN(ctx, timeout, len(l.Nodes), progress)
}

// WaitHealthyN is WaitHealthy for a cluster of want members (some of the
// layout's nodes not started yet).
func (l Layout) WaitHealthyN(ctx context.Context, timeout time.Duration, want int, progress func(status.Report)) (status.Report, error) {
	deadline := time.Now().Add(timeout)
	var last status.Report
	var lastErr error
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := l.Status(sctx)
		cancel()
		if err == nil {
			last, lastErr = r, nil
			if progress != nil {
				progress(r)
			}
			if r.Healthy(want) {
				return r, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return last, fmt.Errorf("cluster not healthy after %s; last seen: %s (store error: %v)", timeout, describe(last), lastErr)
}

func describe(r status.Report) string {
	var parts []string
	for _, m := range r.Members {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", m.Name, m.Role, m.State))
	}
	return fmt.Sprintf("leader=%q members=[%s]", r.Leader, strings.Join(parts, " "))
}

// RepoDir and KeyFile are the demo's local backup repository and its key.
func (l Layout) RepoDir() string { return filepath.Join(l.Dir, "repo") }
func (l Layout) KeyFile() string { return filepath.Join(l.Dir, "repo.key") }

// WithBackups is an edit for Write: every node archives WAL into the demo's
// repository and may run backup jobs.
func (l Layout) WithBackups(cfg *config.Config) {
	cfg.Repository.URL = "file://" + l.RepoDir()
	cfg.Repository.KeyFile = l.KeyFile()
	cfg.Archive.Enabled = true
}

// InitRepository writes a random key file and initialises the repository
// with exe (pgguard), both owned by acct.
func (l Layout) InitRepository(exe string, acct osuser.Account) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(l.KeyFile(), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(exe, "repo", "init", "-c", l.ConfigPath(l.Nodes[0])).CombinedOutput(); err != nil {
		return fmt.Errorf("repo init: %v: %s", err, out)
	}
	for _, p := range []string{l.KeyFile(), l.RepoDir()} {
		if err := acct.ChownTree(p); err != nil {
			return err
		}
	}
	return nil
}

// DefaultJobs is the schedule a new demo cluster gets: a first full backup
// at once, a daily full, hourly incrementals, a daily prune keeping a week
// and a weekly verification of every backup.
func DefaultJobs(now time.Time) ([]jobs.Job, error) {
	specs := []struct {
		id, sched string
		kind      jobs.Kind
		opts      jobs.Options
	}{
		{"first-full", "immediate", jobs.KindFull, jobs.Options{Channels: 2}},
		{"daily-full", "daily@01:00", jobs.KindFull, jobs.Options{Channels: 2}},
		{"hourly-incr", "hourly/1h@00:30-00:30", jobs.KindIncr, jobs.Options{Channels: 2}},
		{"daily-prune", "daily@03:00", jobs.KindPrune, jobs.Options{Keep: 7, WAL: "covered"}},
		{"weekly-verify", "weekly:sun@04:00", jobs.KindVerify, jobs.Options{}},
		// A drill soon after the first full, so a new user sees one pass,
		// then every week.
		{"first-drill", "once@" + now.Add(3*time.Minute).UTC().Format("2006-01-02T15:04:05Z"), jobs.KindDrill, jobs.Options{Channels: 2}},
		{"weekly-drill", "weekly:sat@05:00", jobs.KindDrill, jobs.Options{Channels: 2}},
	}
	var out []jobs.Job
	for _, s := range specs {
		sched, err := schedule.Parse(s.sched, now)
		if err != nil {
			return nil, fmt.Errorf("demo job %s: %w", s.id, err)
		}
		j := jobs.Job{ID: s.id, Name: s.id, Kind: s.kind, Schedule: sched, Enabled: true, Options: s.opts, Created: now, Updated: now}
		if err := j.Validate(); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// InstallJobs stores the default jobs in the cluster.
func (l Layout) InstallJobs(ctx context.Context, now time.Time) ([]jobs.Job, error) {
	list, err := DefaultJobs(now)
	if err != nil {
		return nil, err
	}
	store, err := l.OpenStore()
	if err != nil {
		return nil, err
	}
	defer store.Close()
	for _, j := range list {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := store.PutJob(sctx, j, true)
		cancel()
		if err != nil && !errors.Is(err, dcs.ErrExists) {
			return nil, err
		}
	}
	return list, nil
}
