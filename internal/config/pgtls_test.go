package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/certs"
)

// tlsConfig is good with the store on certificates made for n1 (valid for
// loopback and 10.0.0.1), plus extra lines in the postgresql section.
func tlsConfig(t *testing.T, pgExtra string) string {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Init(dir, []string{"n1"}, map[string][]string{"n1": {"10.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	s := withBin(good)
	s = strings.Replace(s, "  bin_dir:", pgExtra+"  bin_dir:", 1)
	s = strings.ReplaceAll(s, "http://", "https://")
	s = strings.Replace(s, "  allow_plaintext: true\n", "  tls:\n    ca_file: "+certs.CAFile(dir)+"\n    cert_file: "+certs.CertFile(dir, "n1")+"\n    key_file: "+certs.KeyFile(dir, "n1")+"\n", 1)
	return s
}

func TestPostgresTLSFollowsTheStore(t *testing.T) {
	cfg, err := Parse([]byte(tlsConfig(t, "")))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.PostgresTLS()
	if !got.Serves() || got.CertFile != cfg.Etcd.TLS.CertFile || got.KeyFile != cfg.Etcd.TLS.KeyFile || got.CAFile != cfg.Etcd.TLS.CAFile {
		t.Fatalf("with etcd.tls PostgreSQL must serve the node's certificate: %+v", got)
	}
	if got.SSLMode != "verify-full" || got.SSLRootCert != cfg.Etcd.TLS.CAFile {
		t.Fatalf("with etcd.tls the default is verify-full against the CA: %+v", got)
	}
	cfg, err = Parse([]byte(tlsConfig(t, "  sslmode: require\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.PostgresTLS(); got.SSLMode != "require" {
		t.Fatalf("postgresql.sslmode must override the default: %+v", got)
	}
	plain, err := Parse([]byte(withBin(good)))
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.PostgresTLS(); got.Serves() || got.SSLMode != "" || got.SSLRootCert != "" {
		t.Fatalf("without etcd.tls nothing changes (libpq's defaults): %+v", got)
	}
}

func TestPostgresTLSRefusals(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, config, mention string
	}{
		{"an sslmode libpq does not know", tlsConfig(t, "  sslmode: verify\n"), "postgresql.sslmode: \"verify\": use disable, allow, prefer, require, verify-ca, verify-full"},
		{"a root certificate file that does not exist", tlsConfig(t, "  sslrootcert: /nonexistent/ca.crt\n"), "postgresql.sslrootcert"},
		{"a root certificate file without a certificate", tlsConfig(t, "  sslrootcert: "+notPEM+"\n"), "holds no PEM certificate"},
		{"verify-full without TLS or a CA", strings.Replace(withBin(good), "  bin_dir:", "  sslmode: verify-full\n  bin_dir:", 1), "postgresql.sslrootcert: missing"},
		{"sslmode disable while the members accept only TLS", tlsConfig(t, "  sslmode: disable\n"), "hostssl"},
		{"a connect address the certificate does not name", tlsConfig(t, "  connect_address: 10.0.0.2\n"), "postgresql.connect_address: 10.0.0.2 is not a name of the node's certificate"},
		{"a listen address the certificate does not name", tlsConfig(t, "  listen_address: 10.0.0.9\n  connect_address: 10.0.0.1\n"), "postgresql.listen_address: 10.0.0.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("got %v, want an error naming %q", err, tc.mention)
			}
		})
	}
	// A certificate that names the address, and a wildcard listen address
	// (not checked: clients connect to the connect address), pass.
	if _, err := Parse([]byte(tlsConfig(t, "  listen_address: \"*\"\n  connect_address: 10.0.0.1\n"))); err != nil {
		t.Fatalf("a certificate naming the connect address was refused: %v", err)
	}
}

func TestTheAgentNeedsPasswords(t *testing.T) {
	cfg, err := Parse([]byte(withBin(good)))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.ValidateAgent()
	for _, field := range []string{"postgresql.superuser.password: missing", "postgresql.replication.password: missing"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Fatalf("an agent without passwords: %v; want %q", err, field)
		}
	}
	cfg.Postgres.Superuser.Password, cfg.Postgres.Replication.Password = "s3cret-one", "s3cret-two"
	if err := cfg.ValidateAgent(); err != nil {
		t.Fatalf("with both passwords: %v", err)
	}
	cfg.Postgres.Superuser.Password, cfg.Postgres.Replication.Password = "", ""
	cfg.Witness = true
	if err := cfg.ValidateAgent(); err != nil {
		t.Fatalf("a witness runs no PostgreSQL and needs no password: %v", err)
	}
}
