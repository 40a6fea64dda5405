package pg

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	comms := []string{"postgres", "postmaster", i.tools().ServerComm()}
	var ended []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		// The working directory itself, not its path: a process in another
		// mount namespace (a container) may show the same path for
		// another directory, and a bind mount another path for this one.
		var cwd syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/cwd", pid), &cwd); err != nil || cwd.Dev != dir.Dev || cwd.Ino != dir.Ino {
			continue
		}
		if uid, ok := procUID(pid); !ok || uid != i.o.Account.UID {
			continue
		}
		comm, state, ok := procCommState(pid)
		if !ok || state == 'Z' || state == 'X' || !slices.Contains(comms, comm) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		} else {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		ended = append(ended, pid)
	}
	// A killed process lets go of the shared memory as it exits; its
	// parent (init, for an orphan) may reap it much later, and a zombie
	// counts as gone.
	deadline := time.Now().Add(timeout)
	for _, pid := range ended {
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // poll interval: a SIGKILL takes effect in microseconds
		}
	}
	return ended
}

// procUID reads a process's real user id from /proc/PID/status.
func procUID(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			uid, err := strconv.Atoi(f[0])
			return uid, err == nil
		}
	}
	return 0, false
}

// procCommState reads a process's command name and state from
// /proc/PID/stat ("pid (comm) state ..."; comm may hold spaces and
// parentheses, so the state is read after the last ')').
func procCommState(pid int) (comm string, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return "", 0, false
	}
	return s[open+1 : end], s[end+2], true
}
