package config

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pgguard/pgguard/internal/certs"
)

// What the configuration says about whom a node trusts: the store's TLS
// files, plaintext store URLs, the job scripts it may run, the hosts it may
// connect to with the cluster's passwords.

// TLSFiles name a CA, a certificate and its key (PEM files).
type TLSFiles struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ClientConfig is the TLS configuration of a store client that presents
// these files (nil, nil when none is named: a plaintext store).
func (t TLSFiles) ClientConfig() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	return certs.ClientConfig(t.CAFile, t.CertFile, t.KeyFile)
}

// Enabled reports whether any file is named.
func (t TLSFiles) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// check names what is wrong with the files: each must exist, and the key
// must be readable by its owner only.
func (t TLSFiles) check(field string, bad func(field, format string, args ...any)) {
	for name, path := range map[string]string{"ca_file": t.CAFile, "cert_file": t.CertFile, "key_file": t.KeyFile} {
		if path == "" {
			bad(field+"."+name, "missing: TLS needs ca_file, cert_file and key_file (pgguard certs init makes them)")
			continue
		}
		st, err := os.Stat(path)
		if err != nil {
			bad(field+"."+name, "%v", err)
			continue
		}
		if name == "key_file" && st.Mode().Perm()&0o077 != 0 {
			bad(field+"."+name, "%s is readable by group or others (mode %s): chmod 600 it", path, st.Mode().Perm())
		}
	}
}

// checkStoreURLs refuses plaintext store URLs unless allowed, and https
// URLs without TLS files.
func checkStoreURLs(tlsFiles TLSFiles, allowPlaintext bool, urls map[string]string, bad func(field, format string, args ...any)) {
	for field, raw := range urls {
		switch {
		case strings.HasPrefix(raw, "http://") && !allowPlaintext:
			bad(field, "%s is plaintext: whoever reaches it controls the cluster; use https:// with etcd.tls (pgguard certs init), or set etcd.allow_plaintext: true on a network nobody else reaches", raw)
		case strings.HasPrefix(raw, "https://") && !tlsFiles.Enabled():
			bad(field, "%s needs etcd.tls (ca_file, cert_file, key_file)", raw)
		}
	}
}

// scriptName is what jobs.ScriptNamePattern accepts (config does not
// import jobs).
var scriptName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// checkScript refuses an allow-listed script that is not an absolute path
// to an executable file only its owner can change: anyone who could edit
// it could run commands as the agent.
func checkScript(name, path string) error {
	if !scriptName.MatchString(name) {
		return fmt.Errorf("name %q: lower-case letters, digits, '.', '-' or '_'", name)
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q is not an absolute path", path)
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("%q: %v", path, err)
	case !st.Mode().IsRegular() || st.Mode()&0o111 == 0:
		return fmt.Errorf("%q is not an executable file", path)
	case st.Mode()&0o022 != 0:
		return fmt.Errorf("%q is writable by group or others (mode %s): chmod go-w it", path, st.Mode().Perm())
	}
	return nil
}

// TrustedHosts are the hosts this node may connect to as a database
// client with the cluster's passwords: its own addresses, loopback, the
// hosts of the embedded store's peers and postgresql.peer_hosts. Empty
// means no list is known (an external store and no peer_hosts): then no
// host is refused.
func (c Config) TrustedHosts() []string {
	var hosts []string
	if c.Embedded() {
		if peers, err := ParseInitialCluster(c.Etcd.Embed.InitialCluster); err == nil {
			for _, raw := range peers {
				if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
					hosts = append(hosts, u.Hostname())
				}
			}
		}
	}
	hosts = append(hosts, c.Postgres.PeerHosts...)
	if len(hosts) == 0 {
		return nil
	}
	hosts = append(hosts, c.Postgres.ConnectAddress, c.Postgres.ListenAddress, "127.0.0.1", "::1", "localhost")
	sort.Strings(hosts)
	out := hosts[:0]
	for i, h := range hosts {
		if h != "" && (i == 0 || h != hosts[i-1]) {
			out = append(out, h)
		}
	}
	return out
}

// check names what is wrong with a client's API settings: a token file
// others can read, a half-named certificate.
func (a CtlAPI) check(bad func(field, format string, args ...any)) {
	for i, u := range a.URLs {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			bad(fmt.Sprintf("api.urls[%d]", i), "%q: an https:// URL of an agent's API listener", u)
		}
	}
	if len(a.URLs) == 0 {
		return
	}
	if a.TokenFile == "" && a.TLS.CertFile == "" {
		bad("api", "name token_file (a user's token: pgguard ctl users add) or tls.cert_file and tls.key_file (a client certificate)")
	}
	if a.TokenFile != "" {
		if st, err := os.Stat(a.TokenFile); err != nil {
			bad("api.token_file", "%v", err)
		} else if st.Mode().Perm()&0o077 != 0 {
			bad("api.token_file", "%s is readable by group or others (mode %s): chmod 600 it", a.TokenFile, st.Mode().Perm())
		}
	}
	if (a.TLS.CertFile == "") != (a.TLS.KeyFile == "") {
		bad("api.tls", "cert_file and key_file go together")
	}
}

// ClientTLS is the TLS configuration of an API client: the CA that
// verifies the agents and, when named, a client certificate (nil when no
// file is named: the system's roots).
func (a CtlAPI) ClientTLS() (*tls.Config, error) {
	if !a.TLS.Enabled() {
		return nil, nil
	}
	if a.TLS.CertFile == "" {
		return certs.RootsConfig(a.TLS.CAFile)
	}
	return certs.ClientConfig(a.TLS.CAFile, a.TLS.CertFile, a.TLS.KeyFile)
}
