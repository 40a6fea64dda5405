package demo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/badinput"
)

func TestUpRefusesBadRequestsBeforeWritingAnything(t *testing.T) {
	stopped := t.TempDir()
	if err := os.WriteFile(filepath.Join(stopped, "demo.json"), []byte(`{"dir":"`+stopped+`","nodes":["n1"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "demo")
	cases := []struct {
		name    string
		req     UpRequest
		mention string
	}{
		{"no node is too few", UpRequest{Dir: fresh, Nodes: 0, Base: 15432}, "--nodes 0: choose 1 to 9"},
		{"ten nodes are more than the port layout holds", UpRequest{Dir: fresh, Nodes: 10, Base: 15432}, "--nodes 10"},
		{"a base port whose etcd ports would fall below 1024", UpRequest{Dir: fresh, Nodes: 3, Base: 4000}, "--base-port 4000: choose a port between 4100"},
		{"a base port whose API ports would reach the ephemeral range", UpRequest{Dir: fresh, Nodes: 3, Base: MaxBase + 1}, "--base-port"},
		{"a directory holding a stopped demo is not overwritten", UpRequest{Dir: stopped, Nodes: 3, Base: 15432}, "holds a stopped demo cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.req.layout()
			if err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("layout() = %v; want bad input naming %q", err, tc.mention)
			}
		})
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("a refused demo up created its directory: %v", err)
	}
}

func TestUpLaysOutWitnessAndProxies(t *testing.T) {
	l, err := UpRequest{Dir: filepath.Join(t.TempDir(), "demo"), Nodes: 2, Base: 24100, Witness: true, Proxy: true}.layout()
	if err != nil {
		t.Skipf("the ports of base 24100 are not all free on this machine: %v", err)
	}
	if len(l.Nodes) != 3 || !l.IsWitness("w1") || len(l.ProxyRW) != 3 {
		t.Fatalf("two nodes and a witness with proxies: nodes %v, proxies %v", l.Nodes, l.ProxyRW)
	}
	if got := proxyPortList(l); got != "27300,27301" {
		t.Fatalf("proxy ports for a libpq host list = %q; want the two database nodes' only", got)
	}
}
