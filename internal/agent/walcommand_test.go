package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pgguard/pgguard/internal/config"
)

// The archive and restore commands every node gets: none without
// archiving, the configured ones as they are, else this binary's wal-push
// and wal-fetch with PostgreSQL's placeholders, paths shell-quoted, both
// through pgguard-wal when it is installed beside this binary.
func TestArchiveAndRestoreCommands(t *testing.T) {
	o := Options{Executable: "/opt/pg guard/pgguard", ConfigPath: "/etc/it's.yaml"}
	var cfg config.Config
	if a, r := archiveCommand(cfg, o), restoreCommand(cfg, o); a != "" || r != "" {
		t.Fatalf("archiving off: %q, %q; want none", a, r)
	}
	cfg.Archive.Enabled = true
	wantA := `'/opt/pg guard/pgguard' wal-push -c '/etc/it'\''s.yaml' %p`
	wantR := `'/opt/pg guard/pgguard' wal-fetch -c '/etc/it'\''s.yaml' %f %p`
	if a, r := archiveCommand(cfg, o), restoreCommand(cfg, o); a != wantA || r != wantR {
		t.Fatalf("default commands:\n%s\n%s\nwant:\n%s\n%s", a, r, wantA, wantR)
	}
	// pgguard-wal installed beside pgguard serves both.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, FastWALProgram), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	fast := Options{Executable: filepath.Join(bin, "pgguard"), ConfigPath: "/etc/pgguard/node.yaml"}
	wantA = "'" + filepath.Join(bin, FastWALProgram) + "' wal-push -c '/etc/pgguard/node.yaml' %p"
	wantR = "'" + filepath.Join(bin, FastWALProgram) + "' wal-fetch -c '/etc/pgguard/node.yaml' %f %p"
	if a, r := archiveCommand(cfg, fast), restoreCommand(cfg, fast); a != wantA || r != wantR {
		t.Fatalf("commands with pgguard-wal installed:\n%s\n%s\nwant:\n%s\n%s", a, r, wantA, wantR)
	}
	cfg.Archive.Command, cfg.Archive.Restore = "cp %p /a/%f", "cp /a/%f %p"
	if a, r := archiveCommand(cfg, o), restoreCommand(cfg, o); a != cfg.Archive.Command || r != cfg.Archive.Restore {
		t.Fatalf("configured commands: %q, %q; want them as configured", a, r)
	}
}
