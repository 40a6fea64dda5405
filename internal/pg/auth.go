package pg

// How connections to and from the instance are authenticated and
// encrypted: pg_hba.conf, the TLS the server presents, what the node's
// own libpq connections require of the servers they reach, and the
// password file they log in with.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// TLS is the instance's share of the cluster's TLS.
type TLS struct {
	// CertFile, KeyFile and CAFile are what the server presents and
	// trusts (empty CertFile: no TLS). They are copied into the data
	// directory, readable by the database account only, at every
	// configuration write: PostgreSQL refuses a key others can read, and
	// the files named in the configuration may belong to another account.
	CertFile, KeyFile, CAFile string
	// SSLMode and SSLRootCert go into every connection string the node
	// builds ("": libpq's default).
	SSLMode, SSLRootCert string
}

// Files the TLS is copied to, inside the data directory (relative paths
// in postgresql.conf are relative to it, so a clone or a restored copy
// still starts; the agent replaces them with its node's own before it
// starts the server).
const (
	tlsCertName = "pgguard-server.crt"
	tlsKeyName  = "pgguard-server.key"
	tlsCAName   = "pgguard-ca.crt"
)

// serveTLS copies the TLS files into the data directory and adds the
// settings that serve them; nothing without TLS.
func (i *Instance) serveTLS(settings map[string]string) error {
	t := i.o.TLS
	if t.CertFile == "" || t.KeyFile == "" {
		return nil
	}
	for name, src := range map[string]string{tlsCertName: t.CertFile, tlsKeyName: t.KeyFile, tlsCAName: t.CAFile} {
		if src == "" {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("PostgreSQL's TLS: %w", err)
		}
		if err := i.writeDataFile(name, string(data), 0o600); err != nil {
			return err
		}
	}
	settings["ssl"] = "on"
	settings["ssl_cert_file"] = tlsCertName
	settings["ssl_key_file"] = tlsKeyName
	if t.CAFile != "" {
		settings["ssl_ca_file"] = tlsCAName
	}
	settings["ssl_min_protocol_version"] = "TLSv1.2"
	return nil
}

// withSSL adds the node's sslmode and sslrootcert to a connection's
// settings.
func (i *Instance) withSSL(kv map[string]string) map[string]string {
	if m := i.o.TLS.SSLMode; m != "" {
		kv["sslmode"] = m
	}
	if r := i.o.TLS.SSLRootCert; r != "" {
		kv["sslrootcert"] = r
	}
	return kv
}

// WriteHBA writes pg_hba.conf: the operator's lines first, then password
// authentication (SCRAM) for everyone, normal and replication
// connections alike. Nothing is trusted, loopback included: a local
// account that reaches 127.0.0.1 is not the database's superuser. With
// TLS, connections from other hosts must use it (hostssl); loopback may
// go without.
func (i *Instance) WriteHBA() error {
	var b strings.Builder
	b.WriteString("# Written by the pgguard agent; it is rewritten at every start and role change.\n")
	for _, l := range i.o.HBA {
		b.WriteString(l + "\n")
	}
	remote := "host"
	if i.o.TLS.CertFile != "" {
		remote = "hostssl"
	}
	for _, db := range []string{"all", "replication"} {
		fmt.Fprintf(&b, "host %s all 127.0.0.1/32 scram-sha-256\nhost %s all ::1/128 scram-sha-256\n", db, db)
		fmt.Fprintf(&b, "%s %s all 0.0.0.0/0 scram-sha-256\n%s %s all ::/0 scram-sha-256\n", remote, db, remote, db)
	}
	return i.writeDataFile("pg_hba.conf", b.String(), 0o600)
}

// PassFile is the libpq password file the agent writes for its tools and
// for primary_conninfo, so that no password travels in an argument.
func (i *Instance) PassFile() string {
	return filepath.Join(filepath.Dir(filepath.Clean(i.o.DataDir)), ".pgguard.pgpass")
}

// PinPeer lets the passfile give the passwords to u's host and port (the
// caller has checked that u is a member to trust), rewriting it when u is
// new to it.
func (i *Instance) PinPeer(u Upstream) error {
	key := peerKey(u.Host, u.Port)
	i.mu.Lock()
	known := i.peers[key]
	if !known {
		if i.peers == nil {
			i.peers = map[string]bool{}
		}
		i.peers[key] = true
	}
	i.mu.Unlock()
	if known {
		return nil
	}
	return i.WritePassFile()
}

func peerKey(host string, port int) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace
	return fmt.Sprintf("%s:%d", esc(host), port)
}

// WritePassFile writes the superuser and replication passwords for this
// instance's own address and port and for each member PinPeer named, and
// for no other host or port: mode 0600, owned by the database account,
// replaced atomically (the walreceiver may be reading it).
func (i *Instance) WritePassFile() error {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace
	i.passMu.Lock()
	defer i.passMu.Unlock()
	i.mu.Lock()
	endpoints := []string{peerKey(localHost(i.o.ListenAddress), i.o.Port)}
	for k := range i.peers {
		endpoints = append(endpoints, k)
	}
	i.mu.Unlock()
	sort.Strings(endpoints)
	var b strings.Builder
	for n, e := range endpoints {
		if n > 0 && e == endpoints[n-1] {
			continue
		}
		if i.o.ReplPassword != "" {
			fmt.Fprintf(&b, "%s:*:%s:%s\n", e, esc(i.o.ReplUser), esc(i.o.ReplPassword))
		}
		if i.o.SuperPassword != "" {
			fmt.Fprintf(&b, "%s:*:%s:%s\n", e, esc(i.o.Superuser), esc(i.o.SuperPassword))
		}
	}
	path := i.PassFile()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	// WriteFile keeps the mode of a file that exists: libpq ignores a
	// passfile others can read, and others must not read it anyway.
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("password file %s: %w", tmp, err)
	}
	if err := i.o.Account.ChownTree(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("password file %s: %w", path, err)
	}
	return nil
}
