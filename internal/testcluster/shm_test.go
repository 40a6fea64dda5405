package testcluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A server killed with SIGKILL leaves its shared memory segment; the
// helper removes it, and only it.
func TestRemoveSharedMemoryOfAKilledServer(t *testing.T) {
	p := StartPostgres(t, PGOptions{})
	p.Kill()
	b, err := os.ReadFile(filepath.Join(p.DataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatalf("a killed server's postmaster.pid: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 || len(strings.Fields(lines[6])) != 2 {
		t.Fatalf("postmaster.pid has no shared memory line: %q", b)
	}
	id, err := strconv.Atoi(strings.Fields(lines[6])[1])
	if err != nil {
		t.Fatal(err)
	}
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		t.Fatalf("segment %d of the killed server: %v; want it left behind", id, err)
	}
	RemoveSharedMemory(p.DataDir())
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err == nil {
		t.Fatalf("segment %d still exists after RemoveSharedMemory", id)
	}
}
