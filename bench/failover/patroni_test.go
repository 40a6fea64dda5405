package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/procfs"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Where the Debian packages patroni and etcd-server put their programs.
const (
	patroniBin    = "/usr/bin/patroni"
	patronictlBin = "/usr/bin/patronictl"
	etcdBin       = "/usr/bin/etcd"
	pgbackrestBin = "/usr/bin/pgbackrest"
)

// patroniSettings are the timing settings of Patroni's dynamic
// configuration (bootstrap.dcs), in seconds.
type patroniSettings struct {
	Name         string
	TTL          int
	LoopWait     int
	RetryTimeout int
	// EtcdMembers is the size of Patroni's etcd cluster (1 when 0): the
	// failover trials need one (a host loss kills a Patroni node, never
	// the store), the idle CPU comparison three, as a real deployment
	// and pgguard's three embedded members.
	EtcdMembers int
}

var (
	// patroniDefaults are Patroni's built-in defaults (patroni/config.py).
	patroniDefaults = patroniSettings{Name: "Patroni defaults", TTL: 30, LoopWait: 10, RetryTimeout: 10}
	// patroniAggressive are the smallest values Patroni's documentation
	// allows ("Dynamic Configuration Settings": loop_wait minimum 1, ttl
	// minimum 20, retry_timeout minimum 3, and loop_wait + 2*retry_timeout
	// <= ttl), which Patroni 3.2.0 and later also enforce in
	// Config._validate_and_adjust_timeouts.
	patroniAggressive = patroniSettings{Name: "Patroni aggressive", TTL: 20, LoopWait: 1, RetryTimeout: 3}
)

// pgParameters are the PostgreSQL settings of the Patroni clusters: the
// ones pgguard runs PostgreSQL with (pg.ReplicationSettings, and the
// demo layout's memory and connections), so both systems run the same
// PostgreSQL.
var pgParameters = func() map[string]string {
	p := map[string]string{"shared_buffers": "64MB", "max_connections": "50", "fsync": "on"}
	maps.Copy(p, pg.ReplicationSettings)
	return p
}()

// patroniCluster is three Patroni processes on loopback sharing an etcd
// cluster of settings.EtcdMembers members (Patroni uses etcd only as its
// DCS, so one member serves the failover trials; a host loss kills a
// Patroni node, never the store).
type patroniCluster struct {
	t        testing.TB
	dir      string
	acct     osuser.Account
	settings patroniSettings
	etcdURL  string
	// etcdHosts lists every etcd member's client address (Patroni's
	// etcd3.hosts); etcdPIDs their processes.
	etcdHosts string
	etcdPIDs  []int
	nodes     []string
	pgPorts   []int
	apiPorts  []int

	mu    sync.Mutex
	procs map[string]*patroniProc
}

type patroniProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
}

// checkPatroniInstalled fails the benchmark unless the Debian packages
// patroni and etcd-server are installed (`make bench-patroni` installs
// them).
func checkPatroniInstalled(t testing.TB) {
	t.Helper()
	for _, bin := range []string{patroniBin, patronictlBin, etcdBin, pgbackrestBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: apt-get install -y patroni etcd-server pgbackrest (or make bench-patroni)", bin)
		}
	}
}

// freePorts returns n consecutive loopback ports below 32000 that nothing
// listens on.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	for attempt := 0; attempt < 200; attempt++ {
		base := 22000 + 10*rand.IntN(900)
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			ports := make([]int, n)
			for i := range ports {
				ports[i] = base + i
			}
			return ports
		}
	}
	t.Fatal("no free block of loopback ports below 32000")
	return nil
}

// startPatroniCluster starts one etcd and three Patroni nodes in a fresh
// directory and waits until one node leads and the other two stream from
// it. Everything is stopped at cleanup; logs are printed if the benchmark
// failed.
func startPatroniCluster(t testing.TB, s patroniSettings) *patroniCluster {
	t.Helper()
	checkPatroniInstalled(t)
	acct, err := osuser.Resolve("")
	if err != nil {
		t.Fatalf("account: %v", err)
	}
	dir, err := os.MkdirTemp("", "pgguard-patroni-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	members := max(s.EtcdMembers, 1)
	ports := freePorts(t, 6+2*members)
	c := &patroniCluster{
		t: t, dir: dir, acct: acct, settings: s,
		etcdURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[6]),
		nodes:    []string{"p1", "p2", "p3"},
		pgPorts:  ports[0:3],
		apiPorts: ports[3:6],
		procs:    map[string]*patroniProc{},
	}
	t.Cleanup(c.cleanup)
	c.startEtcd(ports[6:6+members], ports[6+members:6+2*members])
	for i, n := range c.nodes {
		c.writeConfig(i, n)
	}
	for _, n := range c.nodes {
		c.startNode(n)
	}
	return c
}

func (c *patroniCluster) nodeDir(node string) string { return filepath.Join(c.dir, node) }
func (c *patroniCluster) dataDir(node string) string { return filepath.Join(c.nodeDir(node), "data") }
func (c *patroniCluster) configPath(node string) string {
	return filepath.Join(c.nodeDir(node), "patroni.yml")
}

// The pgBackRest configuration of node, and the command its
// archive_command and restore_command start with.
func (c *patroniCluster) pgbackrestConfig(node string) string {
	return filepath.Join(c.nodeDir(node), "pgbackrest.conf")
}
func (c *patroniCluster) pgbackrest(node string) string {
	return pgbackrestBin + " --config=" + c.pgbackrestConfig(node) + " --stanza=bench"
}

// initArchive creates the pgBackRest stanza from the leader once the
// cluster has settled, and checks that the leader's WAL reaches the
// repository (pgbackrest check switches a segment and waits for it to be
// archived), so every trial runs with WAL archiving working, as a
// Patroni + pgBackRest user runs it.
func (c *patroniCluster) initArchive(leader string) {
	c.t.Helper()
	if err := c.acct.MkdirAll(filepath.Join(c.dir, "pgbackrest-repo"), 0o750); err != nil {
		c.t.Fatal(err)
	}
	for _, step := range []string{"stanza-create", "check"} {
		cmd := exec.Command(pgbackrestBin, "--config="+c.pgbackrestConfig(leader), "--stanza=bench", step)
		cmd.Dir = c.nodeDir(leader)
		cmd.Env = append(os.Environ(), "HOME="+c.acct.Home, "USER="+c.acct.Name, "LOGNAME="+c.acct.Name)
		c.acct.Apply(cmd)
		if out, err := cmd.CombinedOutput(); err != nil {
			c.t.Fatalf("pgbackrest %s on %s: %v: %s", step, leader, err, out)
		}
	}
}

func (c *patroniCluster) startEtcd(clients, peers []int) {
	c.t.Helper()
	var initial, hosts []string
	for i := range clients {
		initial = append(initial, fmt.Sprintf("dcs%d=http://127.0.0.1:%d", i, peers[i]))
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", clients[i]))
	}
	c.etcdHosts = strings.Join(hosts, ",")
	done := make(chan struct{}, len(clients))
	for i := range clients {
		logf, err := os.Create(filepath.Join(c.dir, fmt.Sprintf("etcd%d.log", i)))
		if err != nil {
			c.t.Fatal(err)
		}
		clientURL, peerURL := "http://"+hosts[i], fmt.Sprintf("http://127.0.0.1:%d", peers[i])
		cmd := exec.Command(etcdBin,
			"--name", fmt.Sprintf("dcs%d", i),
			"--data-dir", filepath.Join(c.dir, fmt.Sprintf("etcd%d", i)),
			"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(c.dir))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
		logf.Close()
		if err != nil {
			c.t.Fatalf("start etcd: %v", err)
		}
		c.etcdPIDs = append(c.etcdPIDs, cmd.Process.Pid)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited); done <- struct{}{} }()
		c.t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.etcdURL + "/health")
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			last = string(body[:n])
			if strings.Contains(last, `"health":"true"`) {
				return
			}
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			c.t.Fatalf("an etcd member exited; see %s", filepath.Join(c.dir, "etcd*.log"))
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("etcd not healthy after 30s; last: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *patroniCluster) writeConfig(i int, node string) {
	c.t.Helper()
	if err := c.acct.MkdirAll(c.nodeDir(node), 0o700); err != nil {
		c.t.Fatal(err)
	}
	var params strings.Builder
	for k, v := range pgParameters {
		fmt.Fprintf(&params, "        %s: '%s'\n", k, v)
	}
	cfg := fmt.Sprintf(`scope: bench
namespace: /pgguard-bench/
name: %[1]s
restapi:
  listen: 127.0.0.1:%[2]d
  connect_address: 127.0.0.1:%[2]d
etcd3:
  hosts: %[3]s
bootstrap:
  dcs:
    ttl: %[4]d
    loop_wait: %[5]d
    retry_timeout: %[6]d
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
%[7]s  initdb:
  - encoding: UTF8
  - locale: C
  - data-checksums
postgresql:
  listen: 127.0.0.1:%[8]d
  connect_address: 127.0.0.1:%[8]d
  data_dir: %[9]s
  bin_dir: %[10]s
  pgpass: %[11]s
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
    replication:
      username: replicator
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: '%[12]s'
    archive_mode: 'on'
    archive_command: '%[13]s archive-push %%p'
  recovery_conf:
    restore_command: '%[13]s archive-get %%f "%%p"'
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
watchdog:
  mode: "off"
`, node, c.apiPorts[i], c.etcdHosts, c.settings.TTL, c.settings.LoopWait, c.settings.RetryTimeout,
		params.String(), c.pgPorts[i], c.dataDir(node), testcluster.PGBinDir, filepath.Join(c.nodeDir(node), "pgpass"), c.nodeDir(node),
		c.pgbackrest(node))
	if err := os.WriteFile(c.configPath(node), []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	// pgBackRest with its defaults (archive-push synchronous, one process)
	// but zstd level 3, as bench/backup runs it; one repository for the
	// three nodes, as a shared repository host would be.
	brCfg := fmt.Sprintf(`[global]
repo1-path=%[1]s
log-path=%[2]s/pgbackrest-log
lock-path=%[2]s/pgbackrest-lock
spool-path=%[2]s/pgbackrest-spool
compress-type=zst
compress-level=3
start-fast=y
log-level-console=warn
log-level-file=info

[bench]
pg1-path=%[3]s
pg1-port=%[4]d
pg1-socket-path=%[2]s
pg1-user=postgres
`, filepath.Join(c.dir, "pgbackrest-repo"), c.nodeDir(node), c.dataDir(node), c.pgPorts[i])
	if err := os.WriteFile(c.pgbackrestConfig(node), []byte(brCfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := c.acct.ChownTree(c.nodeDir(node)); err != nil {
		c.t.Fatal(err)
	}
}

// startNode starts node's Patroni as the PostgreSQL account, in its own
// session, logging to the node's patroni.log.
func (c *patroniCluster) startNode(node string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[node]; p != nil {
		select {
		case <-p.done:
		default:
			c.t.Fatalf("patroni %s already runs (pid %d)", node, p.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(filepath.Join(c.nodeDir(node), "patroni.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(patroniBin, c.configPath(node))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.nodeDir(node)
	cmd.Env = append(os.Environ(), "HOME="+c.acct.Home, "USER="+c.acct.Name, "LOGNAME="+c.acct.Name)
	c.acct.Apply(cmd)
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start patroni %s: %v", node, err)
	}
	p := &patroniProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.procs[node] = p
}

// postmasterPID is the PID in node's postmaster.pid if that process is a
// live postgres (not a zombie). The nodes are laid out as the demo's are
// (DIR/NODE/data), so the demo layout reads it.
func (c *patroniCluster) postmasterPID(node string) int {
	return demo.Layout{Dir: c.dir}.PostmasterPID(node)
}

// killNode is a host loss: SIGKILL to node's Patroni, to its
// postmaster's process group (Patroni starts the postmaster in a session
// of its own) and to each of the postmaster's children, which lead
// groups of their own (PostgreSQL's children call setsid), as
// demo.Layout.KillNode does for pgguard.
func (c *patroniCluster) killNode(node string) error {
	c.mu.Lock()
	p := c.procs[node]
	c.mu.Unlock()
	pm := c.postmasterPID(node)
	if p == nil && pm == 0 {
		return fmt.Errorf("patroni node %s is not running", node)
	}
	if p != nil {
		_ = p.cmd.Process.Kill()
	}
	if pm > 0 {
		children := procfs.Children(pm)
		self, _ := syscall.Getpgid(0)
		pgid, err := syscall.Getpgid(pm)
		if err == nil && pgid > 1 && pgid != self && (p == nil || pgid != p.cmd.Process.Pid) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		} else {
			_ = syscall.Kill(pm, syscall.SIGKILL)
		}
		for _, child := range children {
			procfs.KillGroup(child)
		}
	}
	if p != nil {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("patroni %s (pid %d) still runs 10s after SIGKILL", node, p.cmd.Process.Pid)
		}
	}
	return nil
}

func (c *patroniCluster) cleanup() {
	for _, n := range c.nodes {
		_ = c.killNode(n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for time.Now().Before(deadline) && c.postmasterPID(n) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if c.t.Failed() {
		for _, n := range c.nodes {
			data, _ := os.ReadFile(filepath.Join(c.nodeDir(n), "patroni.log"))
			lines := strings.Split(string(data), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			c.t.Logf("==== %s patroni.log (last lines) ====\n%s", n, strings.Join(lines, "\n"))
		}
	}
	if os.Getenv("PGGUARD_KEEP_TEST_DIRS") == "" {
		_ = os.RemoveAll(c.dir)
	}
}

// patroniMember is one entry of Patroni's GET /cluster.
type patroniMember struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	State    string `json:"state"`
	Timeline int    `json:"timeline"`
}

// clusterView asks the nodes' REST APIs in turn for GET /cluster.
func (c *patroniCluster) clusterView() ([]patroniMember, error) {
	client := http.Client{Timeout: time.Second}
	var errs []error
	for _, port := range c.apiPorts {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/cluster", port))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var v struct {
			Members []patroniMember `json:"members"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return v.Members, nil
	}
	return nil, errors.Join(errs...)
}

func (c *patroniCluster) nodeDSN(node string) string {
	for i, n := range c.nodes {
		if n == node {
			return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=2", c.pgPorts[i])
		}
	}
	return ""
}

// settled reports whether one member leads, every member runs, and the
// leader's PostgreSQL is a primary with every other member streaming from
// it; otherwise what it saw.
func (c *patroniCluster) settled() (string, string) {
	members, err := c.clusterView()
	if err != nil {
		return "", fmt.Sprintf("GET /cluster: %v", err)
	}
	seen := fmt.Sprintf("members %+v", members)
	leader := ""
	for _, m := range members {
		if m.Role == "leader" {
			if leader != "" {
				return "", seen
			}
			leader = m.Name
		}
		if m.State != "running" {
			return "", seen
		}
	}
	if leader == "" || len(members) != len(c.nodes) {
		return "", seen
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.nodeDSN(leader))
	if err != nil {
		return "", seen + fmt.Sprintf("; connect to %s: %v", leader, err)
	}
	defer conn.Close(context.Background())
	var recovery bool
	var streaming []string
	err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), coalesce(array_agg(application_name ORDER BY application_name) FILTER (WHERE state = 'streaming'), '{}') FROM pg_stat_replication`).Scan(&recovery, &streaming)
	if err != nil {
		return "", seen + fmt.Sprintf("; query %s: %v", leader, err)
	}
	seen += fmt.Sprintf("; %s in recovery=%v, streaming standbys %v", leader, recovery, streaming)
	if recovery || len(streaming) != len(c.nodes)-1 {
		return "", seen
	}
	return leader, seen
}

// checkSettings fails unless Patroni runs with the timing settings asked
// for (GET /config: the dynamic configuration in the DCS), so that no
// value was silently adjusted.
func (c *patroniCluster) checkSettings() {
	c.t.Helper()
	client := http.Client{Timeout: 3 * time.Second}
	var got struct {
		TTL          int `json:"ttl"`
		LoopWait     int `json:"loop_wait"`
		RetryTimeout int `json:"retry_timeout"`
	}
	var last error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, port := range c.apiPorts {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/config", port))
			if err != nil {
				last = err
				continue
			}
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil {
				last = err
				continue
			}
			if got.TTL != c.settings.TTL || got.LoopWait != c.settings.LoopWait || got.RetryTimeout != c.settings.RetryTimeout {
				c.t.Fatalf("Patroni runs with ttl=%d loop_wait=%d retry_timeout=%d, not the %d/%d/%d asked for",
					got.TTL, got.LoopWait, got.RetryTimeout, c.settings.TTL, c.settings.LoopWait, c.settings.RetryTimeout)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("GET /config of Patroni failed for 30s: %v", last)
}

// patroniTarget is a Patroni cluster under test.
type patroniTarget struct{ c *patroniCluster }

func (p patroniTarget) Settle(b *testing.B) string {
	b.Helper()
	leader, last := "", ""
	waitUntil(b, "a settled Patroni cluster (one leader, two streaming replicas)", 180*time.Second, func() bool {
		leader, last = p.c.settled()
		return leader != ""
	}, func() string { return last })
	return leader
}

func (p patroniTarget) DSN() string {
	hosts := make([]string, len(p.c.nodes))
	ports := make([]string, len(p.c.nodes))
	for i := range p.c.nodes {
		hosts[i] = "127.0.0.1"
		ports[i] = strconv.Itoa(p.c.pgPorts[i])
	}
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2",
		strings.Join(hosts, ","), strings.Join(ports, ","))
}

func (p patroniTarget) Inject(f fault, node string) (string, error) {
	switch f {
	case hostLoss:
		return node, p.c.killNode(node)
	case postmasterCrash:
		pm := p.c.postmasterPID(node)
		if pm == 0 {
			return node, fmt.Errorf("patroni node %s has no running postmaster", node)
		}
		return node, syscall.Kill(pm, syscall.SIGKILL)
	case switchover:
		out, err := exec.Command(patronictlBin, "-c", p.c.configPath(node), "switchover", "--leader", node, "--force").CombinedOutput()
		if err != nil {
			return node, fmt.Errorf("patronictl switchover: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "Successfully switched over") {
			return node, fmt.Errorf("patronictl switchover did not report success: %s", out)
		}
		return node, nil
	}
	return node, fmt.Errorf("%s is not measured on Patroni", f)
}

func (p patroniTarget) Restore(b *testing.B, node string) { p.c.startNode(node) }
