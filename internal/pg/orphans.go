package pg

import (
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/procfs"
)

// EndOrphans ends the server processes a postmaster that died without
// them left on this data directory, and waits up to timeout for them to
// be gone. It returns their PIDs.
//
// After a SIGKILL of the postmaster its children live on until each
// notices: most at once, but the archiver only after its archive_command
// returns and a WAL sender only between messages. While one of them keeps
// the old shared memory attached, a new postmaster refuses to start
// ("pre-existing shared memory block is still in use"); on the cluster as
// shipped that cost a postmaster crash up to three failed restarts and
// 3 s. Their postmaster would have ended them itself (SIGQUIT, then
// SIGKILL) before its own crash recovery, which is what comes next.
//
// A process is this directory's orphan when it runs the server program
// (its command name) as the PostgreSQL account with the data directory as
// its working directory: PostgreSQL's processes all change into it. Each is the leader of its
// own process group (PostgreSQL's children call setsid), so the group is
// ended with it: an archive_command it was waiting for goes too. Call it
// only with no server running on the directory (Start and CrashRecover
// do, after clearStaleLock, which stops a postmaster it names and refuses
// to go on while a single-user server runs).
func (i *Instance) EndOrphans(timeout time.Duration) []int {
	var dir syscall.Stat_t
	if err := syscall.Stat(i.o.DataDir, &dir); err != nil {
		return nil
	}
	comms := []string{"postgres", "postmaster", i.tools().ServerComm()}
	var ended []int
	for _, pid := range procfs.PIDs() {
		// The working directory itself, not its path: a process in another
		// mount namespace (a container) may show the same path for
		// another directory, and a bind mount another path for this one.
		if pid == os.Getpid() || !procfs.InDir(pid, &dir) {
			continue
		}
		if uid, ok := procfs.UID(pid); !ok || uid != i.o.Account.UID {
			continue
		}
		st, ok := procfs.ReadStat(pid)
		if !ok || !st.Live() || !slices.Contains(comms, st.Comm) {
			continue
		}
		procfs.KillGroup(pid)
		ended = append(ended, pid)
	}
	// A killed process lets go of the shared memory as it exits; its
	// parent (init, for an orphan) may reap it much later, and a zombie
	// counts as gone.
	deadline := time.Now().Add(timeout)
	for _, pid := range ended {
		for procfs.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // poll interval: a SIGKILL takes effect in microseconds
		}
	}
	return ended
}
