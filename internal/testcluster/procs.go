package testcluster

import (
	"maps"
	"slices"

	"github.com/pgguard/pgguard/internal/procfs"
)

// Descendants returns root and every live process below it, sorted.
func Descendants(root int) []int {
	parent := procfs.Parents()
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
