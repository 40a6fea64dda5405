package failover

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/procfs"
	"github.com/pgguard/pgguard/internal/testcluster"
)

var (
	idleSettle = flag.Duration("idle-settle", 60*time.Second, "BenchmarkIdleCPU: how long the cluster runs before the window")
	idleWindow = flag.Duration("idle-window", 60*time.Second, "BenchmarkIdleCPU: the measured window")
)

// BenchmarkIdleCPU measures what a three-node cluster with nothing to do
// costs: the CPU time (utime + stime from /proc/PID/stat) the HA
// processes use over -idle-window, after -idle-settle, as a percentage of
// one core. pgguard runs as `pgguard demo up` ships it
// (testcluster.StartShipped: TLS, API, WAL archiving, jobs); its three
// agents each embed an etcd member. With -patroni, Patroni (defaults,
// three etcd members) is measured the same way, after pgguard, in the
// same run. PostgreSQL is reported apart (the postmaster with its reaped
// children, and its live children).
//
// CPU time, not wall-clock load, so that a busy machine changes the
// figures little; both systems are measured one after the other.
//
// Run: go test ./bench/failover -run '^$' -bench '^BenchmarkIdleCPU$' -benchtime 1x [-patroni]
func BenchmarkIdleCPU(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c := testcluster.StartShipped(b, testcluster.ClusterOptions{})
		var agents, pgs []int
		for _, n := range c.Layout.Nodes {
			agents = append(agents, c.Layout.AgentPID(n))
			pgs = append(pgs, c.Layout.PostmasterPID(n))
		}
		ha, pg := idleCPU(b, agents, pgs)
		reportIdle(b, "pgguard (agents with their etcd members)", agents, ha, pg)
		if *withPatroni {
			checkPatroniInstalled(b)
			s := patroniDefaults
			s.EtcdMembers = 3
			pc := startPatroniCluster(b, s)
			pc.initArchive(patroniTarget{c: pc}.Settle(b))
			var procs, pgs []int
			pc.mu.Lock()
			for _, n := range pc.nodes {
				procs = append(procs, pc.procs[n].cmd.Process.Pid)
			}
			pc.mu.Unlock()
			procs = append(procs, pc.etcdPIDs...)
			for _, n := range pc.nodes {
				pgs = append(pgs, pc.postmasterPID(n))
			}
			ha, pg := idleCPU(b, procs, pgs)
			reportIdle(b, "Patroni 3 nodes + 3 etcd members", procs, ha, pg)
		}
	}
}

func reportIdle(b *testing.B, what string, pids []int, ha []float64, pg float64) {
	total, most := 0.0, 0.0
	var each []string
	for i, p := range ha {
		total += p
		most = max(most, p)
		each = append(each, fmt.Sprintf("pid %d %.2f %%", pids[i], p))
	}
	b.Logf("%s: %.2f %% of one core in total (%s); PostgreSQL %.2f %%; window %s after %s; load %s",
		what, total, strings.Join(each, ", "), pg, *idleWindow, *idleSettle, loadAvg())
	unit := "pgguard"
	if !strings.HasPrefix(what, "pgguard") {
		unit = "patroni"
	}
	b.ReportMetric(total, unit+"-cpu-%")
	b.ReportMetric(pg, unit+"-postgres-cpu-%")
}

// idleCPU waits -idle-settle, then returns the CPU percentage of one core
// each of pids used over -idle-window, and that of the PostgreSQL process
// trees of postmasters (the postmasters, their live children, and the
// children they reaped meanwhile). A process gone before the end fails
// the benchmark: an idle cluster must not restart anything.
func idleCPU(b *testing.B, pids, postmasters []int) ([]float64, float64) {
	b.Helper()
	settle := time.NewTimer(*idleSettle)
	<-settle.C // the cluster settles: a measurement window, not a wait for a state
	before := make([]float64, len(pids))
	for i, p := range pids {
		before[i] = cpuSeconds(b, p, false)
	}
	pgBefore := treeSeconds(b, postmasters)
	started := time.Now()
	window := time.NewTimer(*idleWindow)
	<-window.C
	elapsed := time.Since(started).Seconds()
	out := make([]float64, len(pids))
	for i, p := range pids {
		out[i] = 100 * (cpuSeconds(b, p, false) - before[i]) / elapsed
	}
	return out, 100 * (treeSeconds(b, postmasters) - pgBefore) / elapsed
}

// cpuSeconds is utime + stime of pid (with reaped children's cutime +
// cstime when children is set), in seconds; a process that is gone fails
// the benchmark.
func cpuSeconds(b *testing.B, pid int, children bool) float64 {
	b.Helper()
	v, err := readCPU(pid, children)
	if err != nil {
		b.Fatalf("process %d during the idle measurement: %v", pid, err)
	}
	return v
}

func readCPU(pid int, children bool) (float64, error) {
	st, ok := procfs.ReadStat(pid)
	if !ok || len(st.Fields) < 15 {
		return 0, fmt.Errorf("process %d: no /proc/%d/stat to read", pid, pid)
	}
	f := st.Fields // f[i] is field i+3 of proc(5)
	ticks := 0.0
	fields := []int{11, 12} // utime, stime (fields 14, 15 of proc(5))
	if children {
		fields = append(fields, 13, 14) // cutime, cstime
	}
	for _, i := range fields {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat field %d: %w", pid, i+3, err)
		}
		ticks += v
	}
	return ticks / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// treeSeconds sums the CPU time of each postmaster (with its reaped
// children) and of its live children.
func treeSeconds(b *testing.B, postmasters []int) float64 {
	b.Helper()
	total := 0.0
	for _, pm := range postmasters {
		total += cpuSeconds(b, pm, true)
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pm, pm))
		if err != nil {
			b.Fatalf("children of postmaster %d: %v", pm, err)
		}
		for _, c := range strings.Fields(string(data)) {
			pid, _ := strconv.Atoi(c)
			if v, err := readCPU(pid, false); err == nil { // a backend may end meanwhile
				total += v
			}
		}
	}
	return total
}

func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
