// Package config owns the node configuration: one typed struct, its defaults
// in one constructor, YAML loading that rejects unknown fields, and Validate.
// It never starts anything and never reads the environment except for the
// paths it is given.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/pgbin"
	"gopkg.in/yaml.v3"
)

// Config is one node's configuration (node.yaml).
type Config struct {
	Cluster string `yaml:"cluster"`
	Name    string `yaml:"name"`
	// Witness makes this node a witness (HA-18): its agent runs an
	// embedded etcd member that votes, and no PostgreSQL; it is never a
	// candidate. Two database nodes and a witness fail over as three
	// database nodes do.
	Witness    bool       `yaml:"witness"`
	RunAs      string     `yaml:"run_as"`
	Postgres   Postgres   `yaml:"postgresql"`
	Etcd       Etcd       `yaml:"etcd"`
	HA         HA         `yaml:"ha"`
	Archive    Archive    `yaml:"archive"`
	Jobs       Jobs       `yaml:"jobs"`
	Repository Repository `yaml:"repository"`
	API        API        `yaml:"api"`
	Callbacks  Callbacks  `yaml:"callbacks"`
	Proxy      Proxy      `yaml:"proxy"`
	Disk       Disk       `yaml:"disk"`
	VIP        VIP        `yaml:"vip"`
	Alerts     Alerts     `yaml:"alerts"`
}

// Postgres describes the local instance and how to reach it.
type Postgres struct {
	BinDir         string            `yaml:"bin_dir"`
	DataDir        string            `yaml:"data_dir"`
	ListenAddress  string            `yaml:"listen_address"`
	ConnectAddress string            `yaml:"connect_address"`
	Port           int               `yaml:"port"`
	Superuser      User              `yaml:"superuser"`
	Replication    User              `yaml:"replication"`
	Parameters     map[string]string `yaml:"parameters"`
	HBA            []string          `yaml:"pg_hba"`
	InitdbArgs     []string          `yaml:"initdb_args"`
	// Programs renames the PostgreSQL programs pgguard runs, for forks
	// (e.g. pg_rewind: sys_rewind): a file in bin_dir or an absolute path.
	Programs map[string]string `yaml:"programs"`
	// Database is the database the agent and its tools connect to
	// (default postgres).
	Database string `yaml:"database"`
	// PeerHosts lists where the other members' PostgreSQL may be; with an
	// embedded store the hosts of etcd.embed.initial_cluster count too.
	// A member that advertises another host is never replicated from,
	// and the passfile holds passwords for these hosts only.
	PeerHosts []string `yaml:"peer_hosts"`
	// SSLMode and SSLRootCert are how this node's libpq connections
	// (walreceiver, pg_basebackup, pg_rewind, the agent's own, jobs')
	// check the server they reach. With etcd.tls they default to
	// verify-full against its CA (PostgreSQL then serves TLS with the
	// node's certificate); without, to libpq's defaults.
	SSLMode     string `yaml:"sslmode"`
	SSLRootCert string `yaml:"sslrootcert"`
}

// User is a database role; Password may be empty (trust or peer auth).
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Etcd selects the consensus store: an embedded member (the default) or
// external endpoints.
type Etcd struct {
	Endpoints   []string  `yaml:"endpoints"`
	DialTimeout Duration  `yaml:"dial_timeout"`
	Embed       EtcdEmbed `yaml:"embed"`
	// TLS secures the store's client and peer traffic with certificates
	// of one CA (`pgguard certs init`): the embedded member serves with
	// the node's certificate and requires one from every client and peer;
	// the agent connects with it.
	TLS TLSFiles `yaml:"tls"`
	// AllowPlaintext accepts http:// store URLs. Whoever reaches a
	// plaintext store controls the cluster (switchover, takeover, jobs):
	// set it only on a network nobody else reaches.
	AllowPlaintext bool `yaml:"allow_plaintext"`
}

// EtcdEmbed configures the member this agent runs inside itself.
type EtcdEmbed struct {
	DataDir        string `yaml:"data_dir"`
	ClientURL      string `yaml:"client_url"`
	PeerURL        string `yaml:"peer_url"`
	InitialCluster string `yaml:"initial_cluster"`
	// InitialClusterState is "new" (the default: the member founds the
	// cluster with the others of initial_cluster) or "existing" (a node
	// joining a running cluster after 'pgguard ctl add'; initial_cluster
	// then lists the current members and this one).
	InitialClusterState string `yaml:"initial_cluster_state"`
	ClusterToken        string `yaml:"cluster_token"`
	HeartbeatMs         uint   `yaml:"heartbeat_ms"`
	ElectionMs          uint   `yaml:"election_ms"`
}

// HA holds the failover timings. Every duration is measured on a monotonic
// clock.
type HA struct {
	TTL                  Duration `yaml:"ttl"`
	LoopInterval         Duration `yaml:"loop_interval"`
	SafetyMargin         Duration `yaml:"safety_margin"`
	MaximumLagOnFailover int64    `yaml:"maximum_lag_on_failover"`
	PrimaryStartTimeout  Duration `yaml:"primary_start_timeout"`
	HealthRetries        int      `yaml:"health_retries"`
	HealthDelay          Duration `yaml:"health_delay"`
	NoFailover           bool     `yaml:"no_failover"`
	// NoLoadBalance keeps this standby out of read-only pools: its
	// /replica, /read-only and /async answer 503.
	NoLoadBalance bool `yaml:"no_load_balance"`
	// ReinitOnRewindFailure lets the agent rebuild this node from a base
	// backup of the primary when pg_rewind cannot repair it. The old data
	// directory is moved aside, never deleted.
	ReinitOnRewindFailure bool `yaml:"reinit_on_rewind_failure"`
	// ReplicationMode, SyncCount and SyncTimeout seed the cluster's
	// run-time configuration when this node bootstraps it; afterwards
	// `pgguard ctl config` changes them in the store.
	ReplicationMode string   `yaml:"replication_mode"`
	SyncCount       int      `yaml:"sync_count"`
	SyncTimeout     Duration `yaml:"sync_timeout"`
	// TransferStoreLeadership moves the embedded etcd raft leadership away
	// from the database primary, so that losing the primary's host costs
	// no store election.
	TransferStoreLeadership bool `yaml:"transfer_store_leadership"`
	// SlotRetention is how long the primary keeps WAL (a replication
	// slot) for a member that does not stream from it; then the slot is
	// dropped and recorded, and the member catches up from the archive or
	// is rebuilt. 0 keeps slots for ever.
	SlotRetention Duration `yaml:"slot_retention"`
	// TrustedAddresses are addresses this node must reach to count itself
	// connected (HA-10): "host:port" is tried with a TCP connect, "host"
	// with one ping. A node that reaches none of them does not campaign
	// and shows as isolated. Empty: no check.
	TrustedAddresses []string `yaml:"trusted_addresses"`
	// ApplyDelay makes this node a delayed standby (HA-13):
	// recovery_min_apply_delay, never promoted automatically, never
	// synchronous. `ctl replay` holds or moves its replay at run time.
	ApplyDelay Duration `yaml:"apply_delay"`
}

// Jobs configures this agent's share of the cluster's backup jobs.
type Jobs struct {
	// Enabled lets this node run jobs (when it is primary, or named).
	Enabled  bool     `yaml:"enabled"`
	Interval Duration `yaml:"interval"`
	// ClockSpeed and ClockEpoch are for tests only: the job clock runs
	// ClockSpeed times faster than real time from ClockEpoch.
	ClockSpeed float64   `yaml:"clock_speed"`
	ClockEpoch time.Time `yaml:"clock_epoch"`
	// Scripts allow-lists the executables jobs may run as a precondition
	// and before and after their command: name → absolute path. A job in
	// the store names a script; only this node's list says what runs.
	Scripts map[string]string `yaml:"scripts"`
	// ScriptTimeout bounds each script run.
	ScriptTimeout Duration `yaml:"script_timeout"`
}

// Archive configures WAL archiving that the agent sets up on every node.
type Archive struct {
	Enabled bool   `yaml:"enabled"`
	Command string `yaml:"command"`
	Restore string `yaml:"restore_command"`
	// NoStream turns the WAL stream off: by default the agent of the
	// primary streams WAL into the repository as it is written (slot
	// pgguard_archive), and archive_command only confirms what it stored.
	NoStream bool `yaml:"no_stream"`
}

// Repository names the backup repository used by the backup commands.
type Repository struct {
	URL     string `yaml:"url"`
	KeyFile string `yaml:"key_file"`
	S3      S3     `yaml:"s3"`
	// CopyTo is the second repository `pgguard copy` and copy jobs copy
	// backups into (e.g. off-site S3); --to-repo overrides its URL. Without
	// key_file its passphrase comes from PGGUARD_TO_PASSPHRASE.
	CopyTo CopyTarget `yaml:"copy_to"`
}

// CopyTarget names the destination repository of copies.
type CopyTarget struct {
	URL     string `yaml:"url"`
	KeyFile string `yaml:"key_file"`
	S3      S3     `yaml:"s3"`
}

// S3 holds the settings of an S3-compatible store; credentials may instead
// come from the usual AWS_* environment variables.
type S3 struct {
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	Insecure  bool   `yaml:"insecure"`
}

// Default returns a Config with every default filled in.
func Default() Config {
	return Config{
		Cluster: "main",
		Postgres: Postgres{
			ListenAddress: "127.0.0.1",
			Port:          5432,
			Superuser:     User{Username: "postgres"},
			Database:      "postgres",
			Replication:   User{Username: "replicator"},
		},
		Etcd: Etcd{
			DialTimeout: Duration(2 * time.Second),
			Embed: EtcdEmbed{
				ClusterToken: "pgguard",
				HeartbeatMs:  100,
				ElectionMs:   500,
			},
		},
		Jobs:      Jobs{Enabled: true, Interval: Duration(time.Second), ScriptTimeout: Duration(10 * time.Minute)},
		Callbacks: Callbacks{Timeout: Duration(30 * time.Second)},
		Proxy:     Proxy{ROMaxLag: "16MB", Wait: Duration(10 * time.Second)},
		Disk:      Disk{Warn: "10%", Critical: "5%"},
		Alerts:    DefaultAlerts(),
		HA: HA{
			TTL:                     Duration(3 * time.Second),
			LoopInterval:            Duration(500 * time.Millisecond),
			SafetyMargin:            Duration(1 * time.Second),
			MaximumLagOnFailover:    16 << 20,
			PrimaryStartTimeout:     Duration(30 * time.Second),
			HealthRetries:           3,
			HealthDelay:             Duration(200 * time.Millisecond),
			ReinitOnRewindFailure:   true,
			ReplicationMode:         "async",
			SyncCount:               1,
			SyncTimeout:             Duration(30 * time.Second),
			TransferStoreLeadership: true,
			SlotRetention:           Duration(4 * time.Hour),
		},
	}
}

// Load reads a YAML file over the defaults and validates the result.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	// node.yaml may hold passwords and S3 keys.
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return Config{}, &Error{Problems: []string{fmt.Sprintf("%s is readable or writable by group or others (mode %s): it may hold passwords; chmod 600 it", path, st.Mode().Perm())}}
	}
	return cfg, nil
}

// Parse decodes YAML over the defaults, rejecting unknown fields, and
// validates the result.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, describeYAMLError(data, err)
	}
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

var lineRef = regexp.MustCompile(`line (\d+): `)

// describeYAMLError rewrites a decoding error so that each "line N:" also
// names the dotted field found on that line.
func describeYAMLError(data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	fields := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if path != "" {
					key = path + "." + key
				}
				fields[n.Content[i].Line] = key
				walk(n.Content[i+1], key)
			}
		}
	}
	walk(&root, "")
	msg := lineRef.ReplaceAllStringFunc(strings.TrimPrefix(err.Error(), "yaml: "), func(m string) string {
		n, _ := strconv.Atoi(lineRef.FindStringSubmatch(m)[1])
		if f, ok := fields[n]; ok {
			return fmt.Sprintf("line %d (%s): ", n, f)
		}
		return m
	})
	return errors.New(msg)
}

// fill derives the defaults that depend on other fields.
func (c *Config) fill() {
	if c.Postgres.ConnectAddress == "" {
		c.Postgres.ConnectAddress = c.Postgres.ListenAddress
	}
	if c.Postgres.BinDir == "" {
		c.Postgres.BinDir = DetectBinDir()
	}
}

// DetectBinDir finds PostgreSQL's server binaries, newest Debian version
// first.
func DetectBinDir() string {
	for _, v := range []string{"17", "16", "15", "14", "13"} {
		dir := filepath.Join("/usr/lib/postgresql", v, "bin")
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir
		}
	}
	return "/usr/lib/postgresql/15/bin"
}

// Embedded reports whether this node runs its own etcd member.
func (c *Config) Embedded() bool { return len(c.Etcd.Endpoints) == 0 }

// Duration is a time.Duration written in YAML as "1.5s", "200ms", "1m".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// D returns the standard library duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	parsed, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 500ms, 4s, 1m)", n.Line, n.Value)
	}
	*d = Duration(parsed)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Ctl is the configuration of `pgguard ctl`: which cluster, which store.
type Ctl struct {
	Cluster string `yaml:"cluster"`
	Etcd    struct {
		Endpoints      []string `yaml:"endpoints"`
		DialTimeout    Duration `yaml:"dial_timeout"`
		TLS            TLSFiles `yaml:"tls"`
		AllowPlaintext bool     `yaml:"allow_plaintext"`
	} `yaml:"etcd"`
	// API, when it lists URLs, is how ctl and jobs reach the cluster:
	// through the agents' REST API instead of the store.
	API CtlAPI `yaml:"api"`
}

// CtlAPI is how a client reaches the agents' REST API.
type CtlAPI struct {
	// URLs are agents' API listeners (https://HOST:PORT), tried in turn.
	URLs []string `yaml:"urls"`
	// TokenFile holds a user's bearer token (readable by its owner only).
	TokenFile string `yaml:"token_file"`
	// TLS: ca_file verifies the agents; cert_file and key_file, when
	// named, are a client certificate (instead of a token).
	TLS TLSFiles `yaml:"tls"`
}

// LoadCtl reads and checks a ctl configuration file.
func LoadCtl(path string) (Ctl, error) {
	var c Ctl
	c.Cluster = "main"
	c.Etcd.DialTimeout = Duration(2 * time.Second)
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read ctl config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("ctl config %s: %w", path, describeYAMLError(data, err))
	}
	if len(c.Etcd.Endpoints) == 0 && len(c.API.URLs) == 0 {
		return c, fmt.Errorf("ctl config %s: etcd.endpoints: missing: list the store's client URLs (or api.urls, the agents' API)", path)
	}
	var problems []string
	bad := func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	}
	urls := map[string]string{}
	for i, ep := range c.Etcd.Endpoints {
		field := fmt.Sprintf("etcd.endpoints[%d]", i)
		urls[field] = ep
		if _, err := urlPort(ep); err != nil {
			bad(field, "%v", err)
		}
	}
	if c.Etcd.TLS.Enabled() {
		c.Etcd.TLS.check("etcd.tls", bad)
	}
	checkStoreURLs(c.Etcd.TLS, c.Etcd.AllowPlaintext, urls, bad)
	c.API.check(bad)
	if len(problems) > 0 {
		sort.Strings(problems)
		return c, fmt.Errorf("ctl config %s: %s", path, strings.Join(problems, "; "))
	}
	return c, nil
}

// Tools locates this node's PostgreSQL programs.
func (p Postgres) Tools() pgbin.Tools { return pgbin.Tools{BinDir: p.BinDir, Programs: p.Programs} }
