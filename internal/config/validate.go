package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validation: every field checked, every problem reported at once with its
// field's name.

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks every field and returns all problems at once, each naming
// its field.
func (c *Config) Validate() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if !namePattern.MatchString(c.Cluster) {
		bad("cluster", "%q must be lower-case letters, digits, '-' or '_' (at most 63)", c.Cluster)
	}
	if !namePattern.MatchString(c.Name) {
		bad("name", "%q must be lower-case letters, digits, '-' or '_' (at most 63)", c.Name)
	}
	if c.Name == "archive" {
		// Its replication slot would be pgguard_archive, the WAL stream's.
		bad("name", "%q is reserved (the WAL stream's slot is pgguard_archive): choose another node name", c.Name)
	}
	switch {
	case c.Witness:
		if !c.Embedded() {
			bad("witness", "a witness votes through its own embedded etcd member: set etcd.embed, not etcd.endpoints")
		}
	case c.Postgres.DataDir == "":
		bad("postgresql.data_dir", "missing: set the directory of this node's PostgreSQL data")
	case !filepath.IsAbs(c.Postgres.DataDir):
		bad("postgresql.data_dir", "%q must be an absolute path", c.Postgres.DataDir)
	}
	c.validateSurface(bad)
	c.Alerts.validate(bad)
	if c.Postgres.Port <= 0 || c.Postgres.Port > 65535 {
		bad("postgresql.port", "%d is not a TCP port", c.Postgres.Port)
	}
	if net.ParseIP(c.Postgres.ListenAddress) == nil && c.Postgres.ListenAddress != "localhost" && c.Postgres.ListenAddress != "*" {
		bad("postgresql.listen_address", "%q is not an IP address", c.Postgres.ListenAddress)
	}
	if c.Postgres.Superuser.Username == "" {
		bad("postgresql.superuser.username", "missing")
	}
	c.validatePasswords(bad, false)
	c.validatePostgresTLS(bad)
	if c.Witness {
		// No PostgreSQL on a witness.
	} else if _, err := os.Stat(c.Postgres.Tools().Path("postgres")); err != nil && c.Postgres.Programs["postgres"] == "" {
		bad("postgresql.bin_dir", "%q has no postgres binary: install PostgreSQL (apt-get install postgresql-15) or set bin_dir", c.Postgres.BinDir)
	} else if err := c.Postgres.Tools().Check("postgres"); err != nil {
		bad("postgresql.programs", "%v", err)
	}
	if !namePattern.MatchString(c.Postgres.Database) && c.Postgres.Database != "postgres" {
		bad("postgresql.database", "%q: lower-case letters, digits, '-' or '_'", c.Postgres.Database)
	}
	ha := c.HA
	if ha.LoopInterval <= 0 {
		bad("ha.loop_interval", "must be positive")
	}
	if ha.TTL < Duration(2*time.Second) {
		bad("ha.ttl", "%s is below etcd's minimum lease of 2s", ha.TTL)
	}
	if ha.SafetyMargin <= 0 || ha.SafetyMargin >= ha.TTL {
		bad("ha.safety_margin", "%s must be positive and below ha.ttl (%s)", ha.SafetyMargin, ha.TTL)
	} else if ha.TTL-ha.SafetyMargin <= ha.LoopInterval {
		bad("ha.ttl", "ttl - safety_margin (%s) must exceed loop_interval (%s), or the primary fences itself between two renewals", ha.TTL-ha.SafetyMargin, ha.LoopInterval)
	} else if c.Embedded() {
		c.validateElection(bad)
	}
	switch ha.ReplicationMode {
	case "async", "sync", "strict":
	default:
		bad("ha.replication_mode", "%q: use async, sync or strict", ha.ReplicationMode)
	}
	if ha.SyncCount < 1 {
		bad("ha.sync_count", "must be at least 1")
	}
	if ha.HealthRetries < 1 {
		bad("ha.health_retries", "must be at least 1")
	}
	if ha.HealthDelay < 0 {
		bad("ha.health_delay", "must not be negative")
	}
	if ha.PrimaryStartTimeout < 0 {
		bad("ha.primary_start_timeout", "must not be negative")
	}
	if ha.MaximumLagOnFailover < 0 {
		bad("ha.maximum_lag_on_failover", "must not be negative")
	}
	if c.Jobs.Interval <= 0 {
		bad("jobs.interval", "must be positive")
	}
	if c.Archive.Enabled && (c.Archive.Command == "" || c.Archive.Restore == "") && c.Repository.KeyFile == "" {
		bad("repository.key_file", "missing: archive.enabled runs pgguard wal-push and wal-fetch inside PostgreSQL, whose environment holds no secret; name a key file readable by the database account only")
	}
	if c.Jobs.ScriptTimeout <= 0 {
		bad("jobs.script_timeout", "must be positive")
	}
	for name, path := range c.Jobs.Scripts {
		if err := checkScript(name, path); err != nil {
			bad("jobs.scripts."+name, "%v", err)
		}
	}
	ports := map[int]string{c.Postgres.Port: "postgresql.port"}
	if c.Etcd.TLS.Enabled() {
		c.Etcd.TLS.check("etcd.tls", bad)
	}
	storeURLs := map[string]string{}
	for i, ep := range c.Etcd.Endpoints {
		storeURLs[fmt.Sprintf("etcd.endpoints[%d]", i)] = ep
	}
	if c.Embedded() {
		storeURLs["etcd.embed.client_url"], storeURLs["etcd.embed.peer_url"] = c.Etcd.Embed.ClientURL, c.Etcd.Embed.PeerURL
	}
	checkStoreURLs(c.Etcd.TLS, c.Etcd.AllowPlaintext, storeURLs, bad)
	if c.Embedded() {
		e := c.Etcd.Embed
		if e.DataDir == "" {
			bad("etcd.embed.data_dir", "missing: set a directory for the embedded etcd member, or list etcd.endpoints")
		}
		if st := e.InitialClusterState; st != "" && st != "new" && st != "existing" {
			bad("etcd.embed.initial_cluster_state", "%q: use new (found the cluster) or existing (join a running one after 'pgguard ctl add')", st)
		}
		if e.InitialCluster == "" {
			bad("etcd.embed.initial_cluster", "missing: list every member as name=peer-url, comma-separated")
		} else if _, err := ParseInitialCluster(e.InitialCluster); err != nil {
			bad("etcd.embed.initial_cluster", "%v", err)
		}
		for field, raw := range map[string]string{"etcd.embed.client_url": e.ClientURL, "etcd.embed.peer_url": e.PeerURL} {
			port, err := urlPort(raw)
			if err != nil {
				bad(field, "%v", err)
				continue
			}
			if other, clash := ports[port]; clash {
				bad(field, "port %d is already used by %s", port, other)
			}
			ports[port] = field
		}
	} else {
		for i, ep := range c.Etcd.Endpoints {
			if _, err := urlPort(ep); err != nil {
				bad(fmt.Sprintf("etcd.endpoints[%d]", i), "%v", err)
			}
		}
	}
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}

// Error lists every invalid field of a configuration.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "invalid configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

func urlPort(raw string) (int, error) {
	if raw == "" {
		return 0, errors.New("missing: give an http://host:port URL")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return 0, fmt.Errorf("%q is not an http://host:port URL", raw)
	}
	return strconv.Atoi(u.Port())
}

// ParseInitialCluster splits "a=http://h:1,b=http://h:2" into name → URL.
func ParseInitialCluster(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not name=url", part)
		}
		if _, err := urlPort(u); err != nil {
			return nil, fmt.Errorf("member %s: %w", name, err)
		}
		out[name] = u
	}
	return out, nil
}

// validateElection checks that the embedded store elects a new raft leader
// well inside the time a primary may go without renewing its lease (see
// docs/DESIGN-NOTES.md, "Lease renewal and raft elections"): the last
// renewal can be one loop old when the raft leader's member is lost, raft
// waits up to twice the election timeout (its randomised timeout) before a
// follower campaigns, and the ticks are heartbeat-sized.
func (c Config) validateElection(bad func(field, format string, args ...any)) {
	e, ha := c.Etcd.Embed, c.HA
	if e.HeartbeatMs == 0 || e.ElectionMs < 5*e.HeartbeatMs {
		bad("etcd.embed.election_ms", "%d must be at least 5 times etcd.embed.heartbeat_ms (%d), which must be positive", e.ElectionMs, e.HeartbeatMs)
		return
	}
	ms := func(n uint) time.Duration { return time.Duration(n) * time.Millisecond }
	worst := ha.LoopInterval.D() + 2*ms(e.ElectionMs) + ms(e.HeartbeatMs)
	if limit := (ha.TTL - ha.SafetyMargin).D(); worst > limit {
		bad("etcd.embed.election_ms", "loop_interval + 2 x election_ms + heartbeat_ms (%s) exceeds ttl - safety_margin (%s): losing the store's raft leader would fence the primary; lower election_ms or raise ha.ttl", worst, limit)
	}
}
