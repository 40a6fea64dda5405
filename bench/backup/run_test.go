package backup

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// Commands run as the PostgreSQL account; the timed ones have their peak
// memory measured, two ways (issue 16):
//
//   - the process tree's: every sampleEvery, the resident sets (VmRSS) of
//     the command and all its descendants, added up; the largest sum. It
//     counts pgBackRest's worker processes and pgguard's pg_waldump
//     together, as they run at once.
//   - the largest single process's: GNU time's %M (ru_maxrss from wait4
//     of the command it forks). The rusage of a child the benchmark starts
//     itself would not do: Go starts children with vfork, and the kernel
//     then counts the parent's own lifetime peak (this benchmark's) in
//     the child's ru_maxrss: a floor under the figures of small
//     processes, in the tables before issue 16.
//
// Sampling misses a peak shorter than sampleEvery; ru_maxrss misses
// nothing but sees one process at a time. A tree of one process has both.
const sampleEvery = 10 * time.Millisecond

// gnuTime is GNU time (Debian's package time).
const gnuTime = "/usr/bin/time"

// treeSampler follows the descendants of root and records the largest sum
// of their resident sets.
type treeSampler struct {
	root     int
	skipRoot bool
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	peak     int64 // bytes
}

// sampleTree samples root's tree; skipRoot leaves root itself out (a
// wrapper such as GNU time).
func sampleTree(root int, skipRoot bool) *treeSampler {
	s := &treeSampler{root: root, skipRoot: skipRoot, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

// finish stops sampling and returns the peak in bytes.
func (s *treeSampler) finish() int64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func (s *treeSampler) loop() {
	defer close(s.done)
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	var tree []int
	rescan := time.Time{}
	for {
		// The set of processes changes rarely: /proc is walked again
		// every 100 ms, the known ones read every tick.
		if time.Since(rescan) > 100*time.Millisecond {
			tree, rescan = testcluster.Descendants(s.root), time.Now()
		}
		var sum int64
		for _, pid := range tree {
			if pid != s.root || !s.skipRoot {
				sum += vmRSS(pid)
			}
		}
		s.mu.Lock()
		s.peak = max(s.peak, sum)
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// vmRSS is a process's resident set in bytes (0 once it is gone).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kib, _ := strconv.ParseInt(f[0], 10, 64)
				return kib << 10
			}
		}
	}
	return 0
}

// readPeakFile reads GNU time's %M output (KiB) as bytes.
func readPeakFile(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	kib, _ := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
	return kib << 10
}

// run runs a command as the PostgreSQL account and returns its stdout.
func (bn *bench) run(name string, args ...string) string {
	bn.b.Helper()
	return bn.exec(false, name, args...)
}

// exec is run; measure records the command's peak memory (lastRSS,
// lastTree) as well.
func (bn *bench) exec(measure bool, name string, args ...string) string {
	bn.b.Helper()
	peakFile := ""
	if measure {
		if _, err := os.Stat(gnuTime); err != nil {
			bn.b.Fatalf("GNU time measures peak memory: apt-get install time")
		}
		peakFile = filepath.Join(bn.dir, "peak-rss")
		os.Remove(peakFile)
		args = append([]string{"-f", "%M", "-o", peakFile, name}, args...)
		name = gnuTime
	}
	cmd := exec.CommandContext(context.Background(), name, args...)
	bn.acct.Apply(cmd)
	cmd.Dir = bn.dir
	cmd.Env = append(os.Environ(), "HOME="+bn.dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Start()
	var sampler *treeSampler
	if err == nil {
		if measure {
			// GNU time itself (a MiB or two) is left out of the tree.
			sampler = sampleTree(cmd.Process.Pid, true)
		}
		err = cmd.Wait()
	}
	if sampler != nil {
		bn.lastTree = sampler.finish()
		bn.lastRSS = readPeakFile(peakFile)
	}
	if err != nil {
		bn.b.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	bn.lastCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	bn.lastStderr = errb.String()
	return out.String()
}
