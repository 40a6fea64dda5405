package dcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// The tests of this package share one real etcd member, embedded through
// StartEmbedded on free loopback ports and started by the first test that
// needs it; each test works under its own cluster prefix.

const testMember = "dcs-test"

var (
	etcdOnce     sync.Once
	etcdMember   *Embedded
	etcdEndpoint string
	etcdDir      string
	etcdErr      error
	clusterSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if etcdMember != nil {
		etcdMember.Close()
	}
	if etcdDir != "" && os.Getenv("PGGUARD_KEEP_TEST_DIRS") == "" {
		_ = os.RemoveAll(etcdDir)
	}
	os.Exit(code)
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// testEtcd returns the client URL of the shared etcd member, starting it
// at the first call.
func testEtcd(t *testing.T) string {
	t.Helper()
	etcdOnce.Do(func() {
		etcdDir, etcdErr = os.MkdirTemp("", "pgguard-dcs-test-")
		if etcdErr != nil {
			return
		}
		// A port found free may be taken before etcd binds it: try again.
		for attempt := 0; attempt < 3; attempt++ {
			var ports []int
			if ports, etcdErr = freePorts(2); etcdErr != nil {
				return
			}
			client, peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
			dir := filepath.Join(etcdDir, fmt.Sprintf("member-%d", attempt))
			etcdMember, etcdErr = StartEmbedded(EmbedOptions{
				Name: testMember, DataDir: dir, ClientURL: client, PeerURL: peer,
				InitialCluster: testMember + "=" + peer, ClusterToken: "dcs-test",
				LogFile: filepath.Join(etcdDir, "etcd.log"),
			})
			if etcdErr == nil {
				etcdEndpoint = client
				break
			}
		}
		if etcdErr != nil {
			return
		}
		select {
		case <-etcdMember.Ready():
		case <-time.After(30 * time.Second):
			etcdErr = fmt.Errorf("embedded etcd member not ready after 30 s (log: %s)", filepath.Join(etcdDir, "etcd.log"))
		}
	})
	if etcdErr != nil {
		t.Fatalf("start the test etcd member: %v", etcdErr)
	}
	return etcdEndpoint
}

// testClusterName is a cluster prefix no other test uses.
func testClusterName(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s-%d", name, clusterSeq.Add(1))
}

// openStore opens a store of cluster for node ("" for a ctl), closed at
// cleanup. Its leases last 10 s: no test waits for them, and none sees a
// record expire on a loaded machine either.
func openStore(t *testing.T, cluster, node string) *Store {
	t.Helper()
	return openStoreTTL(t, cluster, node, 10*time.Second)
}

// shortTTL is the shortest lease a store takes, for the tests that wait
// for one to expire.
const shortTTL = 2 * time.Second

func openStoreTTL(t *testing.T, cluster, node string, ttl time.Duration) *Store {
	t.Helper()
	s, err := Open(Options{Endpoints: []string{testEtcd(t)}, DialTimeout: 5 * time.Second, Cluster: cluster, Node: node, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stores opens one store per node of a fresh cluster.
func stores(t *testing.T, nodes ...string) map[string]*Store {
	t.Helper()
	cluster := testClusterName(t)
	out := map[string]*Store{}
	for _, n := range nodes {
		out[n] = openStore(t, cluster, n)
	}
	return out
}

// clusterOf is the cluster a store works on, to open another store of it.
func clusterOf(s *Store) string {
	return strings.TrimSuffix(strings.TrimPrefix(s.prefix, "/pgguard/"), "/")
}

// tctx bounds one call to the store.
func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func load(t *testing.T, s *Store) ha.Cluster {
	t.Helper()
	c, err := s.Load(tctx(t))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return c
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// mustChange asserts that err is a *ChangedError on key.
func mustChange(t *testing.T, what string, err error, key string) *ChangedError {
	t.Helper()
	var ce *ChangedError
	if !errors.As(err, &ce) || ce.Key != key {
		t.Fatalf("%s: got %v, want a change of %s (ErrChanged)", what, err, key)
	}
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("%s: %v does not match ErrChanged", what, err)
	}
	return ce
}

// race calls try for every node at once, released together, and returns
// what each call returned, in the order of nodes.
func race(nodes []string, try func(node string) (bool, error)) (won []bool, errs []error) {
	won, errs = make([]bool, len(nodes)), make([]error, len(nodes))
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			won[i], errs[i] = try(n)
		}()
	}
	close(gate)
	wg.Wait()
	return won, errs
}

// eventually polls cond until it holds or timeout passes, then fails with
// what cond last reported.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last seen: %s", what, timeout, last)
		}
		<-tick.C
	}
}
