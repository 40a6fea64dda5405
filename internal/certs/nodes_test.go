package certs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/badinput"
)

func TestInitNodesRefusesBadInputAndWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	cases := []struct {
		name         string
		dir          string
		nodes, hosts []string
		mention      string
	}{
		{"no directory", "", []string{"n1"}, nil, "certs init needs --dir and --nodes"},
		{"no node", dir, nil, nil, "certs init needs --dir and --nodes"},
		{"a host without an address", dir, []string{"n1"}, []string{"n1"}, `--host "n1": give NODE=ADDRESS`},
		{"a host of a node not named", dir, []string{"n1"}, []string{"n2=10.0.0.2"}, "n2 is not one of --nodes"},
		{"a node named like the operators' certificate", dir, []string{"n1", ClientName}, nil, "is the name of the operators' certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := InitNodes(tc.dir, tc.nodes, tc.hosts)
			if err == nil || !badinput.Is(err) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("InitNodes = %v; want bad input naming %q", err, tc.mention)
			}
		})
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused init created %s: %v", dir, err)
	}
	if err := InitNodes(dir, []string{"n1", "n2"}, []string{"n1=10.0.0.11", "n1=db1.example"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n1", "n2", ClientName} {
		if _, err := os.Stat(CertFile(dir, name)); err != nil {
			t.Fatalf("no certificate for %s: %v", name, err)
		}
	}
}
