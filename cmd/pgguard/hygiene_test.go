package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// Issue 13, item 7: input that would leak or weaken a secret is refused
// with exit 2, a message naming the problem, and nothing written.
func TestSecretHygieneRefusals(t *testing.T) {
	exe := testcluster.Binary(t)
	dir := t.TempDir()
	laxKey := filepath.Join(dir, "lax.key")
	if err := os.WriteFile(laxKey, []byte(strings.Repeat("k", 64)), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(laxKey, 0o644)
	laxCfg := filepath.Join(dir, "lax.yaml")
	goodCfg := "cluster: c\nname: n1\npostgresql:\n  data_dir: " + filepath.Join(dir, "data") + "\n  port: 15999\netcd:\n  endpoints: [\"http://127.0.0.1:2379\"]\n  allow_plaintext: true\nrepository:\n  url: file://" + filepath.Join(dir, "repo2") + "\n"
	if err := os.WriteFile(laxCfg, []byte(goodCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(laxCfg, 0o644)
	keyCfg := filepath.Join(dir, "key.yaml")
	if err := os.WriteFile(keyCfg, []byte(goodCfg+"  key_file: "+laxKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		env     []string
		args    []string
		mention string
	}{
		{"a short passphrase at repo init", []string{"PGGUARD_PASSPHRASE=short"}, []string{"repo", "init", "--repo", "file://" + filepath.Join(dir, "repo")}, "shorter than 12"},
		{"a password in --pg (keyword form)", []string{"PGGUARD_PASSPHRASE=long enough passphrase"},
			[]string{"backup", "full", "--repo", "file://" + filepath.Join(dir, "repo"), "--pg", "host=127.0.0.1 user=postgres password=hunter2", "--pgdata", dir}, "--pg holds a password"},
		{"a password in --pg (URI form)", []string{"PGGUARD_PASSPHRASE=long enough passphrase"},
			[]string{"backup", "full", "--repo", "file://" + filepath.Join(dir, "repo"), "--pg", "postgres://postgres:hunter2@127.0.0.1/postgres", "--pgdata", dir}, "--pg holds a password"},
		{"a node.yaml others can read", nil, []string{"backups", "-c", laxCfg}, "chmod 600"},
		{"a key file others can read", nil, []string{"backups", "-c", keyCfg}, "chmod 600"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(exe, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.mention) {
				t.Fatalf("exit %v, output %q: want exit 2 naming %q", err, out, tc.mention)
			}
			if strings.Contains(string(out), "hunter2") {
				t.Fatalf("the refusal repeats the password: %q", out)
			}
			if _, err := os.Stat(filepath.Join(dir, "repo")); err == nil {
				t.Fatalf("a refused command created the repository")
			}
		})
	}
}
