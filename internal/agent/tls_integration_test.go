package agent_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Issue 13 (and 15): the store answers only clients with a certificate of
// the cluster's CA; plaintext and anonymous TLS clients get nothing.
func TestStoreRefusesClientsWithoutACertificate(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Nodes: 1})
	if !c.Layout.TLS {
		t.Fatal("the test cluster's store is not on TLS: the default layout must be")
	}
	read := func(o dcs.Options) error { return readStore(c.Layout.Cluster, o) }
	good, err := c.Layout.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	if err := read(dcs.Options{Endpoints: c.Layout.Endpoints(), TLS: good}); err != nil {
		t.Fatalf("a client with the ctl certificate cannot read the store: %v", err)
	}
	plain := strings.Replace(c.Layout.Endpoints()[0], "https://", "http://", 1)
	if err := read(dcs.Options{Endpoints: []string{plain}}); err == nil {
		t.Fatal("a plaintext client read the store")
	}
	caOnly, err := certs.ClientConfig(certs.CAFile(c.Layout.CertsDir()), certs.CertFile(c.Layout.CertsDir(), "ctl"), certs.KeyFile(c.Layout.CertsDir(), "ctl"))
	if err != nil {
		t.Fatal(err)
	}
	anon := &tls.Config{RootCAs: caOnly.RootCAs}
	if err := read(dcs.Options{Endpoints: c.Layout.Endpoints(), TLS: anon}); err == nil {
		t.Fatal("a TLS client without a certificate read the store")
	}
	other := t.TempDir()
	if err := certs.Init(other, []string{"intruder"}, nil); err != nil {
		t.Fatal(err)
	}
	foreign, err := certs.ClientConfig(certs.CAFile(c.Layout.CertsDir()), certs.CertFile(other, "intruder"), certs.KeyFile(other, "intruder"))
	if err != nil {
		t.Fatal(err)
	}
	if err := read(dcs.Options{Endpoints: c.Layout.Endpoints(), TLS: foreign}); err == nil {
		t.Fatal("a client with a certificate of another CA read the store")
	}
}

// Issue 15, item 3: an external etcd on TLS with client certificates: the
// agents reach it with their node certificates and keep a healthy cluster;
// a plaintext client and one without a certificate read nothing.
func TestExternalStoreOverTLS(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Nodes: 2, ExternalEtcd: true, ExternalTLS: true})
	if !strings.HasPrefix(c.Layout.External[0], "https://") {
		t.Fatalf("the external store's URL is %s, want https", c.Layout.External[0])
	}
	good, err := c.Layout.ClientTLS()
	if err != nil || good == nil {
		t.Fatalf("no client TLS for the external store: %v", err)
	}
	read := func(endpoint string, tlsCfg *tls.Config) error {
		return readStore(c.Layout.Cluster, dcs.Options{Endpoints: []string{endpoint}, TLS: tlsCfg})
	}
	if err := read(c.Layout.External[0], good); err != nil {
		t.Fatalf("the ctl certificate cannot read the external store: %v", err)
	}
	if err := read(strings.Replace(c.Layout.External[0], "https://", "http://", 1), nil); err == nil {
		t.Fatal("a plaintext client read the external store")
	}
	if err := read(c.Layout.External[0], &tls.Config{RootCAs: good.RootCAs}); err == nil {
		t.Fatal("a client without a certificate read the external store")
	}
	r := c.WaitHealthy(60 * time.Second)
	if r.Leader == "" || len(r.Members) != 2 {
		t.Fatalf("cluster on the external TLS store: leader %q, %d members", r.Leader, len(r.Members))
	}
}

// readStore reads cluster's state from the store as a client with o.
func readStore(cluster string, o dcs.Options) error {
	o.Cluster, o.DialTimeout, o.TTL = cluster, time.Second, 3*time.Second
	store, err := dcs.Open(o)
	if err != nil {
		return err
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = store.Load(ctx)
	return err
}
