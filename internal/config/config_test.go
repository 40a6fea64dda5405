package config

import (
	"strings"
	"testing"
	"time"
)

const good = `
cluster: demo
name: n1
postgresql:
  data_dir: /tmp/pgguard-test/n1/data
  port: 15432
  bin_dir: BINDIR
etcd:
  allow_plaintext: true
  embed:
    data_dir: /tmp/pgguard-test/n1/etcd
    client_url: http://127.0.0.1:12379
    peer_url: http://127.0.0.1:12380
    initial_cluster: n1=http://127.0.0.1:12380,n2=http://127.0.0.1:12390
ha:
  ttl: 6s
`

func withBin(s string) string { return strings.ReplaceAll(s, "BINDIR", DetectBinDir()) }

func TestParseGoodConfigFillsDefaults(t *testing.T) {
	cfg, err := Parse([]byte(withBin(good)))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if cfg.HA.TTL.D() != 6*time.Second {
		t.Errorf("ttl = %s, want 6s", cfg.HA.TTL)
	}
	if cfg.HA.LoopInterval.D() != 500*time.Millisecond {
		t.Errorf("loop_interval default = %s, want 500ms", cfg.HA.LoopInterval)
	}
	if cfg.Postgres.ConnectAddress != "127.0.0.1" {
		t.Errorf("connect_address should default to listen_address, got %q", cfg.Postgres.ConnectAddress)
	}
	if !cfg.Embedded() {
		t.Errorf("no endpoints: embedded etcd expected")
	}
}

func TestParseRejectsBadConfigNamingTheField(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(string) string
		mention string
	}{
		{"unknown field", func(s string) string { return s + "bogus_key: 1\n" }, "bogus_key"},
		{"missing data dir", func(s string) string {
			return strings.Replace(s, "  data_dir: /tmp/pgguard-test/n1/data\n", "", 1)
		}, "postgresql.data_dir"},
		{"relative data dir", func(s string) string { return strings.Replace(s, "/tmp/pgguard-test/n1/data", "data", 1) }, "postgresql.data_dir"},
		{"port clash between postgres and etcd", func(s string) string {
			return strings.Replace(s, "port: 15432", "port: 12379", 1)
		}, "etcd.embed.client_url"},
		{"bad duration", func(s string) string { return strings.Replace(s, "ttl: 6s", "ttl: six", 1) }, "ha.ttl"},
		{"ttl below etcd minimum", func(s string) string { return strings.Replace(s, "ttl: 6s", "ttl: 1s", 1) }, "ha.ttl"},
		{"bad initial cluster", func(s string) string {
			return strings.Replace(s, "n2=http://127.0.0.1:12390", "n2", 1)
		}, "etcd.embed.initial_cluster"},
		{"raft election too slow for the lease: losing the store's leader would fence the primary", func(s string) string {
			return strings.Replace(s, "    initial_cluster:", "    election_ms: 1000\n    initial_cluster:", 1) + "  safety_margin: 4s\n"
		}, "etcd.embed.election_ms"},
		{"election timeout below five heartbeats", func(s string) string {
			return strings.Replace(s, "    initial_cluster:", "    heartbeat_ms: 200\n    initial_cluster:", 1)
		}, "etcd.embed.election_ms"},
		{"a plaintext store without the opt-in: whoever reaches it controls the cluster", func(s string) string {
			return strings.Replace(s, "  allow_plaintext: true\n", "", 1)
		}, "etcd.embed.client_url"},
		{"https without certificates", func(s string) string {
			return strings.ReplaceAll(s, "http://", "https://")
		}, "etcd.tls"},
		{"a TLS key readable by others", func(s string) string {
			return strings.Replace(s, "  allow_plaintext: true\n", "  allow_plaintext: true\n  tls:\n    ca_file: /etc/hostname\n    cert_file: /etc/hostname\n    key_file: /etc/hostname\n", 1)
		}, "etcd.tls.key_file"},
		{"bad node name", func(s string) string { return strings.Replace(s, "name: n1", "name: N 1", 1) }, "name"},
		{"wrong type", func(s string) string { return strings.Replace(s, "port: 15432", "port: many", 1) }, "postgresql.port"},
		{"a program pgguard does not run", func(s string) string {
			return strings.Replace(s, "postgresql:\n", "postgresql:\n  programs: {pg_frobnicate: frob}\n", 1)
		}, "postgresql.programs"},
		{"a renamed program that is not there", func(s string) string {
			return strings.Replace(s, "postgresql:\n", "postgresql:\n  programs: {pg_rewind: sys_rewind}\n", 1)
		}, "postgresql.programs"},
		{"vip without a prefix length", func(s string) string { return s + "vip:\n  address: 10.0.0.50\n  interface: eth0\n" }, "vip.address"},
		{"vip without an interface", func(s string) string { return s + "vip:\n  address: 10.0.0.50/24\n" }, "vip.interface"},
		{"api listen without a port", func(s string) string { return s + "api:\n  listen: 127.0.0.1\n" }, "api.listen"},
		{"api listen on a host name", func(s string) string { return s + "api:\n  listen: db1.example:8008\n" }, "api.listen"},
		{"api listen port out of range", func(s string) string { return s + "api:\n  listen: 127.0.0.1:70000\n" }, "api.listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit(withBin(good))))
			if err == nil {
				t.Fatalf("expected an error")
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not name %q", err, tc.mention)
			}
		})
	}
}
