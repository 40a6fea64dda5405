package config

// This file holds the settings of the operator and routing surface: the
// agent's HTTP listener, its proxy, the virtual IP, callbacks and the disk
// thresholds.

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pgguard/pgguard/internal/api"
)

// VIP is a virtual IP address that follows the primary (HA-12): the
// lease holder adds it to Interface and announces it with a gratuitous
// ARP; a node removes it before it demotes or fences, and a node that is
// not the lease holder never holds it. Address is CIDR: 10.0.0.50/24.
type VIP struct {
	Address   string `yaml:"address"`
	Interface string `yaml:"interface"`
}

// Disk sets when the free space of the data and WAL volumes is low
// (HA-14): a percentage of the volume ("10%") or a size ("2GB"). Below
// warn the agent records it; below critical a standby stops cleanly and a
// primary gives up the slot of the standby holding the most WAL back.
type Disk struct {
	Warn     string `yaml:"warn"`
	Critical string `yaml:"critical"`
}

// Threshold turns a disk setting into free bytes for a volume of total
// bytes.
func Threshold(v string, total uint64) (uint64, error) {
	v = strings.TrimSpace(v)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f >= 100 {
			return 0, fmt.Errorf("%q: a percentage below 100 (10%%) or a size (2GB)", v)
		}
		return uint64(float64(total) * f / 100), nil
	}
	l, err := api.ParseLag(v)
	if err != nil || l.Duration > 0 {
		return 0, fmt.Errorf("%q: a percentage (10%%) or a size (2GB, 512MB)", v)
	}
	return uint64(l.Bytes), nil
}

// Proxy is the agent's built-in PostgreSQL router: clients connect to
// rw_listen for the primary and ro_listen for a standby within ro_max_lag.
type Proxy struct {
	RWListen string `yaml:"rw_listen"`
	ROListen string `yaml:"ro_listen"`
	// ROMaxLag bounds a read-only standby's replay lag ("16MB").
	ROMaxLag string `yaml:"ro_max_lag"`
	// Wait is how long a new connection waits for a backend while there
	// is none (a failover under way) before it is closed.
	Wait Duration `yaml:"wait"`
	// Weights are read-only weights by member (default 1; 0: never).
	Weights map[string]int `yaml:"weights"`
}

// Callbacks are executables this node runs when its PostgreSQL changes
// role (Patroni's convention: arguments EVENT ROLE CLUSTER, plus PGGUARD_*
// variables, nothing inherited, no shell), e.g. to move a virtual IP or
// tell a router. They run one at a time, never holding up a failover;
// their exit status goes to the history, their output to the node's log.
type Callbacks struct {
	OnStart      string   `yaml:"on_start"`
	OnStop       string   `yaml:"on_stop"`
	OnRoleChange string   `yaml:"on_role_change"`
	OnPromote    string   `yaml:"on_promote"`
	OnDemote     string   `yaml:"on_demote"`
	OnFence      string   `yaml:"on_fence"`
	Timeout      Duration `yaml:"timeout"`
}

// Path names the executable of event ("" when none is set).
func (c Callbacks) Path(event string) string {
	return map[string]string{"on_start": c.OnStart, "on_stop": c.OnStop, "on_role_change": c.OnRoleChange,
		"on_promote": c.OnPromote, "on_demote": c.OnDemote, "on_fence": c.OnFence}[event]
}

// API is the agent's HTTP listener: health endpoints for load balancers
// (GET /primary, /replica, /read-only, /sync, /async, /health, /liveness,
// /readiness) and the cluster's status (/cluster).
type API struct {
	// Listen is host:port; empty: no listener.
	Listen string `yaml:"listen"`
	// TLS makes the listener HTTPS with this node's certificate; its CA
	// verifies the client certificates of callers that send one.
	TLS TLSFiles `yaml:"tls"`
	// AllowPlaintext serves the operator API (/api/v1/) over plain HTTP,
	// where bearer tokens travel in the clear: only for a listener no
	// other host reaches. The health endpoints and /metrics are served
	// either way.
	AllowPlaintext bool `yaml:"allow_plaintext"`
}

// validateSurface checks the settings of this file (and the HA safety
// extras that go with them: trusted addresses, the apply delay).
func (c *Config) validateSurface(bad func(field, format string, args ...any)) {
	for field, addr := range map[string]string{"api.listen": c.API.Listen, "proxy.rw_listen": c.Proxy.RWListen, "proxy.ro_listen": c.Proxy.ROListen} {
		if addr != "" && !listenAddress(addr) {
			bad(field, "%q must be HOST:PORT with an IP address (e.g. 127.0.0.1:8008, or :8008 for every address)", addr)
		}
	}
	if c.API.TLS.Enabled() {
		c.API.TLS.check("api.tls", bad)
	}
	if l, err := api.ParseLag(c.Proxy.ROMaxLag); err != nil || l.Duration > 0 {
		bad("proxy.ro_max_lag", "%q: a size in bytes (16MB, 512kB)", c.Proxy.ROMaxLag)
	}
	if c.Proxy.Wait < 0 {
		bad("proxy.wait", "must not be negative")
	}
	for n, w := range c.Proxy.Weights {
		if w < 0 || w > 100 {
			bad("proxy.weights."+n, "%d: 0 (never) to 100", w)
		}
	}
	for _, event := range []string{"on_start", "on_stop", "on_role_change", "on_promote", "on_demote", "on_fence"} {
		if path := c.Callbacks.Path(event); path != "" {
			if err := checkScript(strings.ReplaceAll(event, "_", "-"), path); err != nil {
				bad("callbacks."+event, "%v", err)
			}
		}
	}
	for field, v := range map[string]string{"disk.warn": c.Disk.Warn, "disk.critical": c.Disk.Critical} {
		if _, err := Threshold(v, 1<<40); err != nil {
			bad(field, "%v", err)
		}
	}
	if c.VIP.Address != "" || c.VIP.Interface != "" {
		if _, _, err := net.ParseCIDR(c.VIP.Address); err != nil {
			bad("vip.address", "%q: an address with its prefix length, e.g. 10.0.0.50/24", c.VIP.Address)
		}
		if c.VIP.Interface == "" || len(c.VIP.Interface) > 15 || strings.ContainsAny(c.VIP.Interface, " /\x00") || strings.HasPrefix(c.VIP.Interface, "-") {
			bad("vip.interface", "%q: the name of the network interface that is to carry the address (eth0)", c.VIP.Interface)
		}
	}
	if c.HA.ApplyDelay < 0 {
		bad("ha.apply_delay", "must not be negative")
	}
	for i, a := range c.HA.TrustedAddresses {
		host := a
		if h, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
				bad(fmt.Sprintf("ha.trusted_addresses[%d]", i), "%q: the port is not a TCP port", a)
				continue
			}
			host = h
		}
		if host == "" || strings.ContainsAny(host, " /\x00") || strings.HasPrefix(host, "-") {
			bad(fmt.Sprintf("ha.trusted_addresses[%d]", i), "%q: want HOST or HOST:PORT", a)
		}
	}
	if c.Callbacks.Timeout <= 0 {
		bad("callbacks.timeout", "must be positive")
	}
}

// listenAddress reports whether addr is HOST:PORT with an IP address (or
// localhost, or no host for every address) and a TCP port.
func listenAddress(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	return err == nil && perr == nil && n > 0 && n <= 65535 && (host == "" || host == "localhost" || net.ParseIP(host) != nil)
}
