package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// A bad node.yaml stops the agent before it starts anything: exit code 2,
// the field named, and no directory created.
func TestAgentRefusesBadConfigWithoutTouchingAnything(t *testing.T) {
	exe := testcluster.Binary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "node", "data")
	base := "cluster: c\nname: n1\npostgresql:\n  data_dir: " + data + "\n  port: 15999\netcd:\n  embed:\n    data_dir: " +
		filepath.Join(dir, "node", "etcd") + "\n    client_url: http://127.0.0.1:12999\n    peer_url: http://127.0.0.1:12998\n    initial_cluster: n1=http://127.0.0.1:12998\n"
	cases := []struct {
		name, yaml, mention string
	}{
		{"unknown field", base + "  allow_plaintext: true\nsurprise: 1\n", "surprise"},
		{"bad duration", base + "ha:\n  ttl: soon\n", "ha.ttl"},
		{"port clash", strings.Replace(base, "port: 15999", "port: 12999", 1), "12999"},
		{"missing data dir", strings.Replace(base, "  data_dir: "+data+"\n", "", 1), "postgresql.data_dir"},
		{"plaintext store without the opt-in", base, "allow_plaintext"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "node.yaml")
			if err := os.WriteFile(cfg, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(exe, "agent", "-c", cfg).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit = %v, want code 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.mention) {
				t.Fatalf("error does not name %q:\n%s", tc.mention, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "node")); !os.IsNotExist(err) {
				t.Fatalf("the agent created %s despite the bad config", filepath.Join(dir, "node"))
			}
		})
	}
}
