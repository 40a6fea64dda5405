// Package demo lays out and runs a whole pgguard cluster on this machine:
// one directory per node with its node.yaml, each agent its own OS process
// (with its own embedded etcd member and PostgreSQL on loopback ports). The
// `pgguard demo` command and the integration tests both use it.
//
// It only ever signals the processes it started, found by the PIDs it
// recorded.
package demo

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
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
	// ExternalTLS: the external store serves TLS and wants client
	// certificates of the layout's CA (else it is plaintext).
	ExternalTLS bool `json:"external_tls,omitempty"`
	// TLS secures the store with certificates made in CertsDir (the
	// default); an external store of a test is plaintext.
	TLS bool `json:"tls"`
	// APITLS serves the agents' API over HTTPS with the node certificates
	// (with TLS); without, the API listens on loopback in plain HTTP.
	APITLS bool `json:"api_tls,omitempty"`
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
	return fmt.Sprintf("host=%s port=%s user=%s dbname=postgres target_session_attrs=read-write connect_timeout=2 %s",
		strings.Join(hosts, ","), strings.Join(ports, ","), Superuser, l.ClientParams())
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
	pw, err := l.Passwords()
	if err != nil {
		return config.Config{}, err
	}
	c.Postgres.Superuser = config.User{Username: Superuser, Password: pw.Superuser}
	c.Postgres.Replication = config.User{Username: ReplicationUser, Password: pw.Replication}
	if i < len(l.API) {
		c.API.Listen = fmt.Sprintf("127.0.0.1:%d", l.API[i])
		if l.HTTPS() {
			c.API.TLS = l.tlsFiles(node)
		} else {
			c.API.AllowPlaintext = true // loopback only
		}
	}
	if i < len(l.ProxyRW) && !l.IsWitness(node) {
		c.Proxy.RWListen = fmt.Sprintf("127.0.0.1:%d", l.ProxyRW[i])
		c.Proxy.ROListen = fmt.Sprintf("127.0.0.1:%d", l.ProxyRO[i])
	}
	if len(l.External) > 0 {
		c.Etcd.Endpoints = l.External
		if l.storeTLS() {
			c.Etcd.TLS = l.tlsFiles(node)
		} else {
			c.Etcd.AllowPlaintext = true
		}
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
	if err := l.writePassFile(acct); err != nil {
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
