package testcluster

import (
	"bytes"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ProcessParents maps every live process to its parent, read from
// /proc/PID/stat (a process that exits while it is read is left out).
func ProcessParents() map[int]int {
	ents, _ := os.ReadDir("/proc")
	parent := make(map[int]int, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(pid); ok {
			parent[pid] = ppid
		}
	}
	return parent
}

// Descendants returns root and every live process below it, sorted.
func Descendants(root int) []int {
	parent := ProcessParents()
	in := map[int]bool{root: true}
	for changed := true; changed; {
		changed = false
		for pid, ppid := range parent {
			if in[ppid] && !in[pid] {
				in[pid], changed = true, true
			}
		}
	}
	return slices.Sorted(maps.Keys(in))
}

// childPIDs lists processes whose parent is pid.
func childPIDs(pid int) []int {
	var out []int
	for n, ppid := range ProcessParents() {
		if ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads a process's parent and state from /proc/PID/stat:
// "pid (comm) state ppid ...", where comm may hold spaces and
// parentheses, so the fields are read after its last ')'.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+4 >= len(b) {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0], true
}
