package testcluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/status"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BinDirVar names a directory holding pgguard and pgguard-wal already
// built from this tree: make test builds them once and sets it, so that
// each package's test process does not link both again (two links of
// about a CPU second each, in some twenty packages). Without it, the
// first call builds them into a new directory.
const BinDirVar = "PGGUARD_TEST_BIN_DIR"

// Binary returns the path of a pgguard binary built from this tree, with
// pgguard-wal beside it, in a directory every account can execute from.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if dir := os.Getenv(BinDirVar); dir != "" {
			for _, name := range []string{"pgguard", "pgguard-wal"} {
				if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode()&0o111 == 0 {
					buildErr = fmt.Errorf("%s=%s: no executable %s there (%v): unset it or build with 'go build -o %s ./cmd/pgguard ./cmd/pgguard-wal'", BinDirVar, dir, name, err, dir)
					return
				}
			}
			buildPath = filepath.Join(dir, "pgguard")
			return
		}
		dir, err := os.MkdirTemp("", "pgguard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		_ = os.Chmod(dir, 0o755)
		buildPath = filepath.Join(dir, "pgguard")
		cmd := exec.Command("go", "build", "-o", dir, "github.com/pgguard/pgguard/cmd/pgguard", "github.com/pgguard/pgguard/cmd/pgguard-wal")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build pgguard: %v", buildErr)
	}
	return buildPath
}

// ClusterOptions shape a test cluster.
type ClusterOptions struct {
	Nodes int
	// ExternalEtcd runs one real etcd member inside the test process and
	// has every agent reach it through its own Proxy, so a test can cut a
	// node off from the store.
	ExternalEtcd bool
	// Edit changes each node's configuration before it is written.
	Edit func(*config.Config)
	// BeforeStart runs after the layout is written, before any agent
	// starts (e.g. to initialise a backup repository).
	BeforeStart func(*Cluster)
	// Witness makes the last of the Nodes a witness, w1 (an etcd member
	// and no PostgreSQL).
	Witness bool
	// Later are nodes laid out but not started: the others found the
	// store without them, and each joins later (initial_cluster_state
	// existing) once 'ctl add' made room for it; the test starts it.
	Later []string
	// APITLS serves the agents' API over HTTPS with the node
	// certificates (default: plain HTTP on loopback).
	APITLS bool
	// Plaintext runs the store (and everything else) without TLS: the
	// baseline of the benchmark that measures what TLS costs.
	Plaintext bool
	// ExternalTLS (with ExternalEtcd): the external etcd serves TLS and
	// wants a client certificate of the cluster's CA.
	ExternalTLS bool
}

// Cluster is a running pgguard cluster of agent processes.
type Cluster struct {
	t      testing.TB
	Layout demo.Layout
	Exe    string
	// StoreProxies[node] sits between that node's agent and the store
	// (ExternalEtcd only).
	StoreProxies map[string]*Proxy
	// store is the external etcd member run in this process
	// (ExternalEtcd only), closed at cleanup before its directory goes.
	store *embed.Etcd
}

// StartCluster lays out a cluster in a fresh directory, starts every agent
// and waits until it is healthy. Everything is stopped at cleanup; the
// agents' logs are printed when the test failed.
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	acct := Account(t)
	dir, err := os.MkdirTemp("", "pgguard-it-")
	if err != nil {
		t.Fatal(err)
	}
	if err := acct.ChownTree(dir); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	base, err := demo.FreeBase(o.Nodes, 20000+10*rand.IntN(900))
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Layout: demo.NewLayout(dir, o.Nodes, base), Exe: Binary(t), StoreProxies: map[string]*Proxy{}}
	// Registered before anything it stops is started, so that it runs
	// after their own cleanups and whatever fails below.
	t.Cleanup(func() { c.cleanup(dir) })
	c.Layout.Cluster = "test"
	c.Layout.APITLS = o.APITLS
	c.Layout.TLS = !o.Plaintext
	if o.Witness {
		c.Layout.AddWitness()
	}
	if o.ExternalEtcd {
		var serverTLS *transport.TLSInfo
		if o.ExternalTLS {
			d := c.Layout.CertsDir()
			if err := certs.Init(d, append(append([]string{}, c.Layout.Nodes...), certs.ClientName, "store"), nil); err != nil {
				t.Fatal(err)
			}
			c.Layout.ExternalTLS = true
			serverTLS = &transport.TLSInfo{CertFile: certs.CertFile(d, "store"), KeyFile: certs.KeyFile(d, "store"),
				TrustedCAFile: certs.CAFile(d), ClientCertAuth: true}
		}
		var endpoint string
		c.store, endpoint = startEtcd(t, filepath.Join(dir, "etcd"), c.Layout.Client[0], c.Layout.Peer[0], serverTLS)
		u, _ := url.Parse(endpoint)
		for i, n := range c.Layout.Nodes {
			// Each node reaches the store through its own proxy, on the
			// port its embedded member would have used.
			// The real member has node 0's: its proxy takes the client
			// port a further node would have had.
			port := c.Layout.Client[i]
			if i == 0 {
				port = c.Layout.Client[0] + 2*len(c.Layout.Nodes)
			}
			p := StartProxy(t, port, u.Host)
			c.StoreProxies[n] = p
		}
		c.Layout.External = []string{endpoint}
	}
	edit := func(cfg *config.Config) {
		if o.ExternalEtcd {
			scheme := "http://"
			if o.ExternalTLS {
				scheme = "https://"
			}
			cfg.Etcd.Endpoints = []string{scheme + c.StoreProxies[cfg.Name].Addr()}
		}
		if len(o.Later) > 0 {
			if slices.Contains(o.Later, cfg.Name) {
				cfg.Etcd.Embed.InitialClusterState = "existing"
			} else {
				var keep []string
				for _, part := range strings.Split(cfg.Etcd.Embed.InitialCluster, ",") {
					name, _, _ := strings.Cut(part, "=")
					if !slices.Contains(o.Later, name) {
						keep = append(keep, part)
					}
				}
				cfg.Etcd.Embed.InitialCluster = strings.Join(keep, ",")
			}
		}
		if o.Edit != nil {
			o.Edit(cfg)
		}
	}
	if err := c.Layout.Write(acct, edit); err != nil {
		t.Fatalf("write cluster layout: %v", err)
	}
	if o.BeforeStart != nil {
		o.BeforeStart(c)
	}
	started := time.Now()
	for _, n := range c.Layout.Nodes {
		if !slices.Contains(o.Later, n) {
			c.StartNode(n)
		}
	}
	if _, err := c.Layout.WaitHealthyN(context.Background(), 120*time.Second, len(c.Layout.Nodes)-len(o.Later), nil); err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("cluster healthy %s after its agents started", time.Since(started).Round(10*time.Millisecond))
	return c
}

// cleanup stops the nodes, then the external store, then removes dir. An
// etcd member whose directory is removed under it ends the whole test
// process (its logger's Fatal exits, into a log file that is gone too):
// a passing test then showed as a bare FAIL of its package.
func (c *Cluster) cleanup(dir string) {
	KillNodes(c.Layout, c.Layout.Nodes, 10*time.Second)
	if c.store != nil {
		c.store.Close()
	}
	for _, n := range c.Layout.Nodes {
		RemoveSharedMemory(filepath.Join(c.Layout.NodeDir(n), "data"))
	}
	if c.t.Failed() {
		c.t.Logf("%s", LogTails(c.Layout, c.Layout.Nodes, 60))
	}
	if os.Getenv("PGGUARD_KEEP_TEST_DIRS") == "" {
		_ = os.RemoveAll(dir)
	}
}

// KillNodes is a host loss of each of nodes laid out by l (SIGKILL to its
// agent and postmaster); it waits up to timeout in all for their processes
// to be gone.
func KillNodes(l demo.Layout, nodes []string, timeout time.Duration) {
	for _, n := range nodes {
		_ = l.KillNode(n)
	}
	deadline := time.Now().Add(timeout)
	for _, n := range nodes {
		for time.Now().Before(deadline) && (l.AgentPID(n) > 0 || l.PostmasterPID(n) > 0) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// LogTails is the last n lines of the agent's and PostgreSQL's logs of
// each of nodes laid out by l, each headed by its node and file: what a
// failure report shows.
func LogTails(l demo.Layout, nodes []string, n int) string {
	var b strings.Builder
	for _, node := range nodes {
		for _, f := range []string{"agent.log", "postgres.log"} {
			data, _ := os.ReadFile(filepath.Join(l.NodeDir(node), f))
			lines := strings.Split(string(data), "\n")
			if len(lines) > n {
				lines = lines[len(lines)-n:]
			}
			fmt.Fprintf(&b, "\n==== %s %s (last lines) ====\n%s\n", node, f, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

// startEtcd runs a single real etcd member in this process; the caller
// closes it.
func startEtcd(t testing.TB, dir string, clientPort, peerPort int, serverTLS *transport.TLSInfo) (*embed.Etcd, string) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "store"
	cfg.Dir = dir
	scheme := "http"
	if serverTLS != nil {
		scheme = "https"
		cfg.ClientTLSInfo = *serverTLS
	}
	cu, _ := url.Parse(fmt.Sprintf("%s://127.0.0.1:%d", scheme, clientPort))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = "store=" + pu.String()
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(filepath.Dir(dir), "store-etcd.log")}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatalf("etcd not ready after 30s")
	}
	return e, cu.String()
}

// StartNode starts node's agent.
func (c *Cluster) StartNode(node string) {
	c.t.Helper()
	if _, err := c.Layout.StartNode(c.Exe, node); err != nil {
		c.t.Fatalf("start %s: %v", node, err)
	}
}

// KillNode is a host loss: SIGKILL to node's agent and postmaster.
func (c *Cluster) KillNode(node string) {
	c.t.Helper()
	if err := c.Layout.KillNode(node); err != nil {
		c.t.Fatalf("kill %s: %v", node, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && c.Layout.AgentPID(node) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

// Status reads the cluster status from the store.
func (c *Cluster) Status() (status.Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Layout.Status(ctx)
}

// WaitHealthy waits until one primary leads and all other nodes stream.
func (c *Cluster) WaitHealthy(timeout time.Duration) status.Report {
	c.t.Helper()
	r, err := c.Layout.WaitHealthy(context.Background(), timeout, nil)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return r
}

// WaitFor polls the status until cond holds, failing with the last status
// seen after timeout.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func(status.Report) bool) status.Report {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last status.Report
	var lastErr error
	for time.Now().Before(deadline) {
		r, err := c.Status()
		if err == nil {
			last = r
			if cond(r) {
				return r
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("timed out after %s waiting for %s; last status: leader=%q members=%+v (err %v)", timeout, what, last.Leader, last.Members, lastErr)
	return last
}

// Leader returns the current leader's name (waiting for one).
func (c *Cluster) Leader() string {
	c.t.Helper()
	return c.WaitFor("a leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" }).Leader
}

// NodeDSN is a superuser connection string to one node.
func (c *Cluster) NodeDSN(node string) string {
	for i, n := range c.Layout.Nodes {
		if n == node {
			return c.Layout.ClientDSN("127.0.0.1", c.Layout.PGPorts[i])
		}
	}
	c.t.Fatalf("unknown node %s", node)
	return ""
}

// NodeDSNs maps every node to its connection string.
func (c *Cluster) NodeDSNs() map[string]string {
	out := map[string]string{}
	for _, n := range c.Layout.Nodes {
		out[n] = c.NodeDSN(n)
	}
	return out
}
