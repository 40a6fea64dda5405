// Package certs makes the small certificate authority a site without one
// needs for pgguard's TLS: a CA, one certificate per node (server and
// client: the node's etcd member serves with it and its agent connects
// with it) and one for operators' tools. It loads them into tls.Configs
// for the store's clients.
//
// It never overwrites a key: a second Init reuses the CA and issues only
// the certificates that are missing, so adding a node is another Init.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity of the certificates Init issues.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
)

// ClientName is the certificate operators' tools (ctl) connect with.
const ClientName = "ctl"

// Paths of the files Init writes in dir.
func CAFile(dir string) string         { return filepath.Join(dir, "ca.crt") }
func CAKeyFile(dir string) string      { return filepath.Join(dir, "ca.key") }
func CertFile(dir, name string) string { return filepath.Join(dir, name+".crt") }
func KeyFile(dir, name string) string  { return filepath.Join(dir, name+".key") }

// Init makes (or completes) the CA in dir and a certificate for each of
// names, valid for localhost, 127.0.0.1, ::1, the name itself and the
// addresses hosts lists for it. Keys are written 0600.
func Init(dir string, names []string, hosts map[string][]string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certificates directory %s: %w", dir, err)
	}
	ca, caKey, err := loadOrMakeCA(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := os.Stat(CertFile(dir, name)); err == nil {
			continue
		}
		if err := issue(dir, name, hosts[name], ca, caKey); err != nil {
			return err
		}
	}
	return nil
}

func loadOrMakeCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if _, err := os.Stat(CAFile(dir)); err == nil {
		pair, err := tls.LoadX509KeyPair(CAFile(dir), CAKeyFile(dir))
		if err != nil {
			return nil, nil, fmt.Errorf("load the CA in %s: %w", dir, err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, nil, fmt.Errorf("parse %s: %w", CAFile(dir), err)
		}
		key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("%s: not an ECDSA key", CAKeyFile(dir))
		}
		return cert, key, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "pgguard CA", Organization: []string{"pgguard"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(caValidity),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make the CA: %w", err)
	}
	if err := writePair(CAFile(dir), CAKeyFile(dir), der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func issue(dir, name string, hosts []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"pgguard"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(leafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost", name},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("issue the certificate of %s: %w", name, err)
	}
	return writePair(CertFile(dir, name), KeyFile(dir, name), der, key)
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyPath, err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", certPath, err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// ClientConfig is the tls.Config of a client that trusts caFile and
// presents certFile/keyFile.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs ca_file, cert_file and key_file")
	}
	cfg, err := RootsConfig(caFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s / %s: %w", certFile, keyFile, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// ServerConfig is the tls.Config of a server that presents certFile/
// keyFile and verifies a client certificate against caFile when the
// client sends one (a client may authenticate otherwise, with a token).
func ServerConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg, err := ClientConfig(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: cfg.Certificates, ClientCAs: cfg.RootCAs, ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12}, nil
}

// RootsConfig is the tls.Config of a client that trusts caFile and
// presents no certificate.
func RootsConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
