package testcluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// RemoveSharedMemory removes the System V shared memory segment a
// postmaster killed with SIGKILL left behind, as its data directory's
// postmaster.pid names it, if nothing is attached to it and its key is
// still the one the file names (it waits up to 5 s for the killed
// server's backends to detach). PostgreSQL removes such a segment only
// when it starts again on the same data directory; a test that kills a
// server and then deletes its directory leaks one segment for good, and a
// machine that runs the suites often reaches the kernel's shmmni (4096)
// and then fails every start with "could not create shared memory
// segment: No space left on device". Call it after the server's processes
// are gone and before the directory is removed; it does nothing when the
// server stopped cleanly (no postmaster.pid).
func RemoveSharedMemory(dataDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6]) // "  <key>  <shmid>"
	if len(f) != 2 {
		return
	}
	key, err1 := strconv.ParseInt(f[0], 10, 64)
	id, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return
	}
	// The backends of a killed postmaster notice its death and detach a
	// little after it is gone.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil || int64(desc.Perm.Key) != key {
			return
		}
		if desc.Nattch == 0 {
			_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			return
		}
		if time.Now().After(deadline) {
			return
		}
	}
}
