package demo

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/osuser"
)

// CertsDir holds the layout's CA and certificates.
func (l Layout) CertsDir() string { return filepath.Join(l.Dir, "certs") }

func (l Layout) scheme() string {
	if l.TLS {
		return "https"
	}
	return "http"
}

// HTTPS reports whether the agents' API is served over HTTPS.
func (l Layout) HTTPS() bool { return l.TLS && l.APITLS }

// storeTLS reports whether the store is reached over TLS.
func (l Layout) storeTLS() bool { return l.TLS && (len(l.External) == 0 || l.ExternalTLS) }

// APIScheme is the scheme of the agents' API URLs.
func (l Layout) APIScheme() string {
	if l.HTTPS() {
		return "https"
	}
	return "http"
}

// tlsFiles are the files node (or certs.ClientName) connects with.
func (l Layout) tlsFiles(name string) config.TLSFiles {
	d := l.CertsDir()
	return config.TLSFiles{CAFile: certs.CAFile(d), CertFile: certs.CertFile(d, name), KeyFile: certs.KeyFile(d, name)}
}

// writeCerts makes the CA and the certificates of every node and of ctl,
// readable by the database account that runs the agents.
func (l Layout) writeCerts(acct osuser.Account) error {
	if !l.TLS {
		return nil
	}
	if err := certs.Init(l.CertsDir(), append(append([]string{}, l.Nodes...), certs.ClientName), l.Hosts); err != nil {
		return err
	}
	return acct.ChownTree(l.CertsDir())
}

// CtlYAML is a ctl configuration for the given endpoints; dialTimeout ""
// keeps the default.
func (l Layout) CtlYAML(endpoints []string, dialTimeout string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster: %s\netcd:\n", l.Cluster)
	if dialTimeout != "" {
		fmt.Fprintf(&b, "  dial_timeout: %s\n", dialTimeout)
	}
	b.WriteString("  endpoints:\n")
	for _, e := range endpoints {
		b.WriteString("    - " + e + "\n")
	}
	if l.storeTLS() {
		f := l.tlsFiles(certs.ClientName)
		fmt.Fprintf(&b, "  tls:\n    ca_file: %s\n    cert_file: %s\n    key_file: %s\n", f.CAFile, f.CertFile, f.KeyFile)
	} else {
		b.WriteString("  allow_plaintext: true\n")
	}
	return b.String()
}

// ClientTLS is the TLS configuration of ctl for this layout (nil when the
// store is plaintext).
func (l Layout) ClientTLS() (*tls.Config, error) {
	if !l.storeTLS() {
		return nil, nil
	}
	return l.tlsFiles(certs.ClientName).ClientConfig()
}

// OpenStore connects to the layout's store as ctl does.
func (l Layout) OpenStore() (*dcs.Store, error) {
	t, err := l.ClientTLS()
	if err != nil {
		return nil, err
	}
	return dcs.Open(dcs.Options{Endpoints: l.Endpoints(), DialTimeout: 2 * time.Second, Cluster: l.Cluster, TTL: 4 * time.Second, TLS: t})
}
