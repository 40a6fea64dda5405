package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"testing"
)

// A node's certificate serves TLS that a client trusting the CA accepts,
// and the server accepts the ctl certificate as a client.
func TestInitIssuesCertificatesThatVerifyBothWays(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, []string{"n1", ClientName}, map[string][]string{"n1": {"10.200.0.11"}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAKeyFile(dir), KeyFile(dir, "n1"), KeyFile(dir, ClientName)} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (err %v), want 0600", f, st.Mode().Perm(), err)
		}
	}
	srv, err := ClientConfig(CAFile(dir), CertFile(dir, "n1"), KeyFile(dir, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	serverConf := &tls.Config{Certificates: srv.Certificates, ClientCAs: srv.RootCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverConf)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok"))
			_ = c.Close()
		}
	}()
	cli, err := ClientConfig(CAFile(dir), CertFile(dir, ClientName), KeyFile(dir, ClientName))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err != nil {
		t.Fatalf("a client with the ctl certificate cannot reach the node over TLS: %v", err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if string(b) != "ok" {
		t.Fatalf("read %q", b)
	}
	// Without a client certificate the server refuses.
	anon := &tls.Config{RootCAs: cli.RootCAs}
	if conn, err := tls.Dial("tcp", ln.Addr().String(), anon); err == nil {
		_, err = io.ReadAll(conn)
		conn.Close()
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
	}
	// The extra host is in the node's certificate.
	pair, _ := tls.LoadX509KeyPair(CertFile(dir, "n1"), KeyFile(dir, "n1"))
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if err := leaf.VerifyHostname("10.200.0.11"); err != nil {
		t.Fatalf("the node's address is not in its certificate: %v", err)
	}
	if net.ParseIP("10.200.0.11") == nil {
		t.Fatal("unreachable")
	}
}

// A second Init keeps the CA and every existing key, and issues what is
// missing (adding a node).
func TestInitAgainAddsANodeAndKeepsTheCA(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, []string{"n1"}, nil); err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(CAFile(dir))
	n1, _ := os.ReadFile(KeyFile(dir, "n1"))
	if err := Init(dir, []string{"n1", "n4"}, nil); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(CAFile(dir))
	n1b, _ := os.ReadFile(KeyFile(dir, "n1"))
	if string(ca1) != string(ca2) || string(n1) != string(n1b) {
		t.Fatal("a second Init replaced the CA or an existing key")
	}
	if _, err := os.Stat(CertFile(dir, "n4")); err != nil {
		t.Fatalf("n4 not issued: %v", err)
	}
}
