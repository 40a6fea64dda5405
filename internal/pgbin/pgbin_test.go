package pgbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestToolsPathAndCheck(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"sys_rewind", "postgres"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tools := Tools{BinDir: dir, Programs: map[string]string{"pg_rewind": "sys_rewind", "pg_dump": "/opt/fork/bin/sys_dump"}}
	if got := tools.Path("pg_rewind"); got != filepath.Join(dir, "sys_rewind") {
		t.Errorf("renamed in bin_dir: %s", got)
	}
	if got := tools.Path("pg_dump"); got != "/opt/fork/bin/sys_dump" {
		t.Errorf("absolute: %s", got)
	}
	if got := tools.Path("initdb"); got != filepath.Join(dir, "initdb") {
		t.Errorf("not renamed: %s", got)
	}
	if err := tools.Check("postgres"); err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("a renamed program that is not there passed: %v", err)
	}
	delete(tools.Programs, "pg_dump")
	if err := tools.Check("postgres"); err != nil {
		t.Errorf("good tools refused: %v", err)
	}
	tools.Programs["pg_frob"] = "x"
	if err := tools.Check(); err == nil || !strings.Contains(err.Error(), "not a program pgguard runs") {
		t.Errorf("an unknown program passed: %v", err)
	}
	long := Tools{BinDir: dir, Programs: map[string]string{"postgres": "a-very-long-server-name"}}
	if c := long.ServerComm(); c != "a-very-long-ser" {
		t.Errorf("comm %q, want the first 15 bytes", c)
	}
}
