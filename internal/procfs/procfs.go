// Package procfs reads what pgguard needs of Linux's /proc about other
// processes (command name, state, parent, user, working directory, CPU
// time) and ends them with their process groups. Processes come and go while they are read: every function
// treats a process that is gone as one that does not match.
package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Stat is a process's /proc/PID/stat.
type Stat struct {
	// Comm is the command name (at most 15 bytes, may hold spaces and
	// parentheses).
	Comm string
	// State is R, S, D, Z (zombie), X (dead), …
	State byte
	PPID  int
	// Fields are the fields after the command name, the state first:
	// Fields[i] is field i+3 of proc(5) (utime is Fields[11]).
	Fields []string
}

// Live is whether the process is neither a zombie nor dead.
func (s Stat) Live() bool { return s.State != 'Z' && s.State != 'X' }

// ReadStat reads /proc/PID/stat. The fields are read after the command
// name's last ')', since the name itself may hold one.
func ReadStat(pid int) (Stat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 >= len(s) {
		return Stat{}, false
	}
	f := strings.Fields(s[end+2:])
	if len(f) < 2 || f[0] == "" {
		return Stat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return Stat{Comm: s[open+1 : end], State: f[0][0], PPID: ppid, Fields: f}, true
}

// Alive reports whether pid exists and is not a zombie: a zombie still
// answers kill(pid, 0), and has released its memory.
func Alive(pid int) bool {
	s, ok := ReadStat(pid)
	return ok && s.Live()
}

// PIDs lists the processes there are, in /proc's order.
func PIDs() []int {
	entries, _ := os.ReadDir("/proc")
	out := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// Parents maps every process that could be read to its parent.
func Parents() map[int]int {
	pids := PIDs()
	parent := make(map[int]int, len(pids))
	for _, pid := range pids {
		if s, ok := ReadStat(pid); ok {
			parent[pid] = s.PPID
		}
	}
	return parent
}

// Children lists the processes whose parent is pid.
func Children(pid int) []int {
	var out []int
	for _, n := range PIDs() {
		if s, ok := ReadStat(n); ok && s.PPID == pid {
			out = append(out, n)
		}
	}
	return out
}

// UID reads a process's real user id from /proc/PID/status.
func UID(pid int) (int, bool) {
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

// KillGroup sends SIGKILL to pid's process group when pid leads one (as
// each of PostgreSQL's processes does: they call setsid), so that what it
// started goes too, else to pid alone.
func KillGroup(pid int) {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	} else {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// InDir reports whether pid's working directory is the directory st
// describes (the same device and inode: the path a process shows can
// name another directory in another mount namespace).
func InDir(pid int, st *syscall.Stat_t) bool {
	var cwd syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/cwd", pid), &cwd); err != nil {
		return false
	}
	return cwd.Dev == st.Dev && cwd.Ino == st.Ino
}
