package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPostmasterProcessesListsDescendantsWithTitles(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	got := postmasterProcesses(os.Getpid())
	if !strings.Contains(got, "sleep 60") {
		t.Fatalf("the listing of this process's tree lacks its child `sleep 60`:\n%s", got)
	}
	if got := postmasterProcesses(0); !strings.Contains(got, "no postmaster running") {
		t.Fatalf("no postmaster: got %q", got)
	}
}

func TestWALListingNamesHistoryFilesAndTheNewestSegments(t *testing.T) {
	dir := t.TempDir()
	names := []string{"00000002.history", "00000003.history"}
	for i := 1; i <= 9; i++ {
		names = append(names, "00000003000000000000000"+string(rune('0'+i)))
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	got := walListing(dir)
	want := "pg_wal: history [00000002.history 00000003.history]; last files [000000030000000000000004 000000030000000000000005 000000030000000000000006 000000030000000000000007 000000030000000000000008 000000030000000000000009]\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := walListing(filepath.Join(dir, "absent")); !strings.HasPrefix(got, "pg_wal: open ") {
		t.Fatalf("a missing directory: got %q", got)
	}
}
