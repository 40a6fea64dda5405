package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// What the configuration says about PostgreSQL's own connections: the
// TLS it serves, how its clients check it, and the passwords the agent
// logs in with.

// PostgresTLS is PostgreSQL's side of the cluster's TLS: the files the
// server presents (empty: no TLS) and how this node's libpq clients check
// the servers they reach.
type PostgresTLS struct {
	// CertFile, KeyFile and CAFile are the node's certificate, its key and
	// the cluster's CA (ssl_cert_file, ssl_key_file, ssl_ca_file).
	CertFile, KeyFile, CAFile string
	// SSLMode and SSLRootCert go into every connection string the node
	// builds ("" leaves libpq's default).
	SSLMode, SSLRootCert string
}

// Serves reports whether PostgreSQL serves TLS.
func (t PostgresTLS) Serves() bool { return t.CertFile != "" && t.KeyFile != "" }

// sslModes are libpq's sslmode values, weakest first.
var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// PostgresTLS derives PostgreSQL's TLS from the store's: a node whose
// store runs on certificates of the cluster's CA (etcd.tls) serves its
// PostgreSQL with the same certificate, and connects to the other
// members with sslmode=verify-full against that CA, unless
// postgresql.sslmode or postgresql.sslrootcert say otherwise.
func (c Config) PostgresTLS() PostgresTLS {
	t := PostgresTLS{SSLMode: c.Postgres.SSLMode, SSLRootCert: c.Postgres.SSLRootCert}
	if f := c.Etcd.TLS; f.CertFile != "" && f.KeyFile != "" && f.CAFile != "" {
		t.CertFile, t.KeyFile, t.CAFile = f.CertFile, f.KeyFile, f.CAFile
		if t.SSLMode == "" {
			t.SSLMode = "verify-full"
		}
		if t.SSLRootCert == "" {
			t.SSLRootCert = f.CAFile
		}
	}
	return t
}

// validatePostgresTLS checks postgresql.sslmode and sslrootcert, and that
// the node's certificate names the addresses other members (and the
// agent itself) verify it by.
func (c Config) validatePostgresTLS(bad func(field, format string, args ...any)) {
	p := c.Postgres
	if p.SSLMode != "" && !strings.Contains(" "+strings.Join(sslModes, " ")+" ", " "+p.SSLMode+" ") {
		bad("postgresql.sslmode", "%q: use %s", p.SSLMode, strings.Join(sslModes, ", "))
		return
	}
	if p.SSLRootCert != "" {
		if err := checkPEMCertificates(p.SSLRootCert); err != nil {
			bad("postgresql.sslrootcert", "%v", err)
			return
		}
	}
	if c.Witness {
		return
	}
	t := c.PostgresTLS()
	switch {
	case (t.SSLMode == "verify-ca" || t.SSLMode == "verify-full") && t.SSLRootCert == "":
		bad("postgresql.sslrootcert", "missing: sslmode %s checks the server against a CA: name its certificate file (or set etcd.tls, whose CA is the default)", t.SSLMode)
	case t.Serves() && t.SSLMode == "disable":
		bad("postgresql.sslmode", "disable: with etcd.tls the members' PostgreSQL accept only TLS from other hosts (hostssl); use verify-full, the default")
	case t.Serves() && t.SSLMode == "verify-full":
		// Whatever connects here checks these names; a certificate without
		// them would fail every standby's replication, not the config.
		for field, host := range map[string]string{"postgresql.connect_address": p.ConnectAddress, "postgresql.listen_address": p.ListenAddress} {
			if err := certificateNames(t.CertFile, host); err != nil {
				bad(field, "%v", err)
			}
		}
	}
}

// certificateNames checks that the certificate in certFile is valid for
// host (an address or a name clients connect to; a wildcard listen
// address is not checked).
func certificateNames(certFile, host string) error {
	switch host {
	case "", "*", "0.0.0.0", "::":
		return nil
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil // the store's TLS check reports the file
	}
	certs, err := parsePEMCertificates(data)
	if err != nil {
		return nil
	}
	if err := certs[0].VerifyHostname(host); err != nil {
		names := append([]string{}, certs[0].DNSNames...)
		for _, ip := range certs[0].IPAddresses {
			names = append(names, ip.String())
		}
		return fmt.Errorf("%s is not a name of the node's certificate %s (it names %s): the other members connect with sslmode=verify-full; issue the certificate again with `pgguard certs init --host NODE=%s` (delete the old .crt and .key first), or set postgresql.sslmode", host, certFile, strings.Join(names, ", "), host)
	}
	return nil
}

// checkPEMCertificates checks that path holds at least one PEM
// certificate.
func checkPEMCertificates(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = parsePEMCertificates(data)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}

func parsePEMCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("holds no PEM certificate")
	}
	return out, nil
}

// validatePasswords checks what the agent logs in with: printable ASCII
// (the agent sends PostgreSQL a SCRAM verifier computed without
// SASLprep), and, for a node that runs PostgreSQL under an agent, present:
// nothing is trusted on loopback, so the agent, its tools and the other
// members' standbys log in with them.
func (c Config) validatePasswords(bad func(field, format string, args ...any), agent bool) {
	for _, f := range []struct {
		field string
		user  User
	}{{"postgresql.superuser.password", c.Postgres.Superuser}, {"postgresql.replication.password", c.Postgres.Replication}} {
		for _, r := range f.user.Password {
			if r < 0x21 || r > 0x7e {
				bad(f.field, "use printable ASCII characters without spaces (the agent sends PostgreSQL a SCRAM verifier of it, never the password)")
				break
			}
		}
		if agent && !c.Witness && f.user.Password == "" {
			bad(f.field, "missing: PostgreSQL trusts no connection, loopback included: the agent, pg_rewind, pg_basebackup and the other members' standbys log in as %s with it; set the same password on every node (node.yaml is readable by its owner only)", f.user.Username)
		}
	}
}

// LoadAgent is Load for the agent: ValidateAgent's checks too.
func LoadAgent(path string) (Config, error) {
	cfg, err := Load(path)
	if err != nil {
		return cfg, err
	}
	if err := cfg.ValidateAgent(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ValidateAgent checks what running an agent needs beyond Validate: the
// passwords it logs in with (a node.yaml that only backup or restore
// commands read may leave them out).
func (c Config) ValidateAgent() error {
	var errs []string
	c.validatePasswords(func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}, true)
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}
