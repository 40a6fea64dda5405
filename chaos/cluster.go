package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Ports every node uses on its own address (each node has its own
// namespace, so they never clash).
const (
	pgPort    = 5432
	etcdPort  = 2379
	peerPort  = 2380
	proxyPort = 6432
)

// Cluster is a pgguard cluster whose nodes each live in their own network
// namespace. It reuses demo.Layout for the directories, the node files and
// the PIDs, and starts each agent through `ip netns exec`.
type Cluster struct {
	Layout demo.Layout
	Net    *Net
	Exe    string // pgguard
	Client string // chaosclient
	Mode   string // ha.replication_mode
	// ProxyPort is every agent's built-in read-write proxy port (0: no
	// proxy); VIP the virtual IP ("": none).
	ProxyPort int
	VIP       string
	// Shipped: the cluster runs as `pgguard demo up` ships it, archiving
	// WAL into a local backup repository, with the demo's default jobs
	// (InstallJobs, once it is up).
	Shipped bool
}

// NewCluster writes the node files of a three-node cluster in dir (which
// must be searchable by the postgres account) for the given replication
// mode; it starts nothing. shipped gives it what `pgguard demo up` gives
// every cluster: WAL archiving into a backup repository, initialised here
// (the default jobs come with InstallJobs once the cluster runs).
func NewCluster(dir string, n *Net, exe, client, mode string, shipped bool, edits ...func(*config.Config)) (*Cluster, error) {
	acct, err := osuser.Resolve("")
	if err != nil {
		return nil, err
	}
	l := demo.NewLayout(dir, len(n.Nodes), pgPort)
	l.Cluster = "chaos"
	l.Nodes = n.Nodes
	l.Hosts = map[string][]string{}
	var peers []string
	for _, node := range n.Nodes {
		peers = append(peers, fmt.Sprintf("%s=https://%s:%d", node, n.Addrs[node], peerPort))
		l.Hosts[node] = []string{n.Addrs[node]}
	}
	edit := func(c *config.Config) {
		addr := n.Addrs[c.Name]
		c.Postgres.Port = pgPort
		c.Postgres.ListenAddress = addr
		c.Postgres.ConnectAddress = addr
		// No passwords in the test subnet: it exists only in namespaces.
		c.Postgres.HBA = []string{
			"host all all " + Subnet + " trust",
			"host replication all " + Subnet + " trust",
		}
		c.Etcd.Embed.ClientURL = fmt.Sprintf("https://%s:%d", addr, etcdPort)
		c.Etcd.Embed.PeerURL = fmt.Sprintf("https://%s:%d", addr, peerPort)
		c.Etcd.Embed.InitialCluster = strings.Join(peers, ",")
		c.HA.ReplicationMode = mode
		if shipped {
			l.WithBackups(c)
		}
		for _, e := range edits {
			e(c)
		}
	}
	if err := l.Write(acct, edit); err != nil {
		return nil, fmt.Errorf("write cluster layout: %w", err)
	}
	if shipped {
		if err := l.InitRepository(exe, acct); err != nil {
			return nil, fmt.Errorf("backup repository: %w", err)
		}
	}
	c := &Cluster{Layout: l, Net: n, Exe: exe, Client: client, Mode: mode, Shipped: shipped}
	if err := os.WriteFile(c.ctlPath(), []byte(l.CtlYAML(c.endpoints(), "1s")), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// InstallJobs stores the demo's default backup jobs (a first full backup
// at once, a drill three minutes later, the daily and hourly schedule),
// from the client namespace: the only one that reaches the store.
func (c *Cluster) InstallJobs(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "ip", "netns", "exec", NodeNS("client"), c.Client, "jobs",
		"-layout", c.Layout.Dir, "-endpoints", strings.Join(c.endpoints(), ",")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaosclient jobs: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) endpoints() []string {
	var out []string
	for _, node := range c.Net.Nodes {
		out = append(out, fmt.Sprintf("https://%s:%d", c.Net.Addrs[node], etcdPort))
	}
	return out
}

// ctlPath is the ctl configuration that reaches the store from the client
// namespace (demo's own ctl.yaml names loopback ports).
func (c *Cluster) ctlPath() string { return filepath.Join(c.Layout.Dir, "ctl-chaos.yaml") }

// StartNode starts node's agent inside its namespace. `ip netns exec`
// execs the agent in place, so the PID recorded is the agent's.
func (c *Cluster) StartNode(node string) error {
	if pid := c.Layout.AgentPID(node); pid > 0 {
		return fmt.Errorf("node %s already runs (agent pid %d)", node, pid)
	}
	logf, err := os.OpenFile(filepath.Join(c.Layout.NodeDir(node), "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", NodeNS(node), c.Exe, "agent", "-c", c.Layout.ConfigPath(node))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent %s: %w", node, err)
	}
	go func() { _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(c.Layout.NodeDir(node), "agent.pid"), []byte(fmt.Sprint(pid)), 0o644); err != nil {
		return err
	}
	// The PID only names the agent once `ip` has exec'd it.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && c.Layout.AgentPID(node) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if c.Layout.AgentPID(node) == 0 {
		return fmt.Errorf("agent %s (pid %d) not running 5s after start: see %s", node, pid, filepath.Join(c.Layout.NodeDir(node), "agent.log"))
	}
	return nil
}

// EnsureRunning starts every node whose agent is not running.
func (c *Cluster) EnsureRunning() error {
	for _, n := range c.Net.Nodes {
		if c.Layout.AgentPID(n) == 0 {
			if err := c.StartNode(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// KillAgent is a SIGKILL to node's agent only (and so its etcd member);
// PostgreSQL keeps running.
func (c *Cluster) KillAgent(node string) error {
	pid := c.Layout.AgentPID(node)
	if pid == 0 {
		return fmt.Errorf("node %s has no running agent", node)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// Stop kills every node and waits (bounded) for the processes to go.
func (c *Cluster) Stop() {
	testcluster.KillNodes(c.Layout, c.Net.Nodes, 10*time.Second)
}

// ctlJSON runs `ctl WHAT -o json` from the client namespace and decodes
// its output into v.
func (c *Cluster) ctlJSON(ctx context.Context, what string, v any) error {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "ip", "netns", "exec", NodeNS("client"), c.Exe, "ctl", "-c", c.ctlPath(), what, "-o", "json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ctl %s: %w: %s", what, err, strings.TrimSpace(errb.String()))
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		return fmt.Errorf("ctl %s output: %w", what, err)
	}
	return nil
}

// Status reads `ctl status -o json` from the client namespace.
func (c *Cluster) Status(ctx context.Context) (status.Report, error) {
	var r status.Report
	err := c.ctlJSON(ctx, "status", &r)
	return r, err
}

// FullyHealthy is the end state every trial must come back to: one
// primary holding the key, every other node streaming and, in a
// synchronous mode, a synchronous standby named.
func (c *Cluster) FullyHealthy(r status.Report) bool {
	if !r.Healthy(len(c.Net.Nodes)) {
		return false
	}
	return c.Mode == "async" || len(r.SyncStandbys) > 0
}

// PublishedSince reports whether every member's record in r was written
// after t (r read at now).
func PublishedSince(r status.Report, t, now time.Time) bool {
	limit := now.Sub(t).Seconds()
	for _, m := range r.Members {
		if m.AgeSeconds >= limit {
			return false
		}
	}
	return len(r.Members) > 0
}

// WaitHealthy polls until FullyHealthy and caught up (CaughtUp), or the
// deadline; the error says what was last seen.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) (status.Report, error) {
	return c.WaitFor(ctx, "full health", timeout, c.CaughtUp(c.FullyHealthy))
}

// CaughtUp returns a condition that holds once healthy(r) holds and every
// standby has replayed past what the primary had written when healthy
// first held (for the same primary). "Streaming" is what a standby's WAL
// receiver says, and a receiver can stream a timeline that the startup
// process refuses to replay (chaos/FINDINGS.md, item 10): such a standby
// looks healthy and never catches up. The mark costs up to one status
// publication (500 ms) of time to health.
func (c *Cluster) CaughtUp(healthy func(status.Report) bool) func(status.Report) bool {
	var mark lsn.LSN
	var leader string
	return func(r status.Report) bool {
		if !healthy(r) {
			return false
		}
		for _, m := range r.Members {
			if m.Name == r.Leader && (leader != r.Leader || mark == 0) {
				leader = r.Leader
				mark, _ = lsn.Parse(m.WalLSN)
			}
		}
		if mark == 0 {
			return false
		}
		for _, m := range r.Members {
			if m.Name == r.Leader {
				continue
			}
			if replayed, err := lsn.Parse(m.ReplayedLSN); err != nil || replayed < mark {
				return false
			}
		}
		return true
	}
}

// WaitFor polls the status until cond holds or the deadline passes.
func (c *Cluster) WaitFor(ctx context.Context, what string, timeout time.Duration, cond func(status.Report) bool) (status.Report, error) {
	return demo.PollStatus(ctx, timeout, c.Status, cond, func(last status.Report, lastErr error) error {
		return fmt.Errorf("no %s after %s; last seen: %s (status error: %v)", what, timeout, Describe(last), lastErr)
	})
}

// Describe is a one-line summary of a status report.
func Describe(r status.Report) string {
	var parts []string
	for _, m := range r.Members {
		s := fmt.Sprintf("%s=%s/%s", m.Name, m.Role, m.State)
		if m.Streaming {
			s += "/streaming"
		}
		if m.Name == r.Leader && m.WalLSN != "" {
			s += "@" + m.WalLSN
		} else if m.Name != r.Leader && m.ReplayedLSN != "" {
			s += "@" + m.ReplayedLSN
		}
		if m.Problem != "" {
			s += "(" + m.Problem + ")"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("leader=%q sync=%v members=[%s]", r.Leader, r.SyncStandbys, strings.Join(parts, " "))
}

// DSN is the multi-host connection string the workload writes through.
func (c *Cluster) DSN() string {
	hosts := make([]string, len(c.Net.Nodes))
	for i, n := range c.Net.Nodes {
		hosts[i] = c.Net.Addrs[n]
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2",
		strings.Join(hosts, ","), pgPort)
}

// Routes are the workload's extra write paths ("NAME=DSN", chaosclient's
// -route): the agents' built-in proxy when the cluster runs it, the
// virtual IP when it has one.
func (c *Cluster) Routes() []string {
	var out []string
	if c.ProxyPort != 0 {
		hosts := make([]string, len(c.Net.Nodes))
		for i, n := range c.Net.Nodes {
			hosts[i] = c.Net.Addrs[n]
		}
		// target_session_attrs=any: the proxy, not libpq, must find the
		// primary; the next host only when a node's proxy is down.
		out = append(out, fmt.Sprintf("proxy=host=%s port=%d user=postgres dbname=postgres target_session_attrs=any connect_timeout=2",
			strings.Join(hosts, ","), c.ProxyPort))
	}
	if c.VIP != "" {
		out = append(out, fmt.Sprintf("vip=host=%s port=%d user=postgres dbname=postgres connect_timeout=2", c.VIP, pgPort))
	}
	return out
}

// NodeDSN is a connection string to one node.
func (c *Cluster) NodeDSN(node string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres connect_timeout=2", c.Net.Addrs[node], pgPort)
}

// probeTargets is the -nodes flag of chaosclient run.
func (c *Cluster) probeTargets() string {
	var parts []string
	for _, n := range c.Net.Nodes {
		parts = append(parts, fmt.Sprintf("%s=%s:%d", n, c.Net.Addrs[n], pgPort))
	}
	return strings.Join(parts, ",")
}

// NodeOf maps an address back to its node name.
func (c *Cluster) NodeOf(addr string) string {
	for n, a := range c.Net.Addrs {
		if a == addr {
			return n
		}
	}
	return addr
}

// MoveStoreLeader makes node's etcd member the raft leader (`ctl
// store-leader` from the client namespace), retrying for a few seconds: a
// member that has just caught up may be refused once.
func (c *Cluster) MoveStoreLeader(ctx context.Context, node string) error {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		out, err := exec.CommandContext(cctx, "ip", "netns", "exec", NodeNS("client"), c.Exe, "ctl", "-c", c.ctlPath(), "store-leader", node).CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("ctl store-leader %s: %v: %s", node, err, strings.TrimSpace(string(out)))
		if err := hold(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	return last
}

// Events reads the cluster history (`ctl history -o json`).
func (c *Cluster) Events(ctx context.Context) ([]dcs.Event, error) {
	var events []dcs.Event
	err := c.ctlJSON(ctx, "history", &events)
	return events, err
}

// History returns `ctl history` (best effort, for failure reports).
func (c *Cluster) History(ctx context.Context) string {
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "ip", "netns", "exec", NodeNS("client"), c.Exe, "ctl", "-c", c.ctlPath(), "history").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(ctl history: %v) %s", err, out)
	}
	return string(out)
}
