package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/procfs"
)

// What else the machine did while a timed step ran: the CPU of every other
// process, the disks' work and the dirty pages the step found. The warm
// restore was 1.2-1.6 s slower than the cold one in every run of this
// bench, and not outside it (BENCHMARKS.md, "Backup and restore"): a
// step's wall time depends on what runs beside it, and this says what did.

// machineSnap is what the machine had done up to one moment.
type machineSnap struct {
	procs map[int]procCPU
	disk  diskCounters
	dirty int64 // bytes dirty or under writeback
}

// procCPU is one process's CPU so far, in clock ticks: its own, and that
// of the children it has reaped (a short-lived archive_command counts in
// the archiver's).
type procCPU struct {
	name  string
	start uint64 // start time in ticks since boot: tells a reused PID apart
	own   int64
	kids  int64
}

// diskCounters are /proc/diskstats' sums over the whole disks.
type diskCounters struct {
	readSectors, writeSectors, busyMs int64
}

// clockTicks is USER_HZ, 100 on every Linux this bench runs on.
const clockTicks = 100

func snapMachine() machineSnap {
	s := machineSnap{procs: map[int]procCPU{}}
	for _, pid := range procfs.PIDs() {
		if st, ok := procfs.ReadStat(pid); ok {
			if p, ok := cpuOf(st); ok {
				s.procs[pid] = p
			}
		}
	}
	if b, err := os.ReadFile("/proc/diskstats"); err == nil {
		s.disk = parseDiskstats(string(b), func(dev string) bool {
			if strings.HasPrefix(dev, "loop") || strings.HasPrefix(dev, "ram") || strings.HasPrefix(dev, "zram") {
				return false
			}
			_, err := os.Stat("/sys/block/" + dev)
			return err == nil
		})
	}
	if b, err := os.ReadFile("/proc/vmstat"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && (f[0] == "nr_dirty" || f[0] == "nr_writeback") {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				s.dirty += n * int64(os.Getpagesize())
			}
		}
	}
	return s
}

// cpuOf reads a process's CPU and start time from its stat fields.
func cpuOf(st procfs.Stat) (procCPU, bool) {
	f := st.Fields
	// f[i] is field i+3 of proc(5): utime is field 14, stime 15, cutime
	// 16, cstime 17, starttime 22.
	if len(f) < 20 {
		return procCPU{}, false
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procCPU{name: st.Comm, start: start, own: n(11) + n(12), kids: n(13) + n(14)}, true
}

// parseDiskstats sums sectors read (field 6), written (field 10) and the
// time the device was busy (field 13) over the devices whole says are
// whole disks, not partitions.
func parseDiskstats(text string, whole func(string) bool) diskCounters {
	var d diskCounters
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) < 13 || !whole(f[2]) {
			continue
		}
		n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
		d.readSectors += n(5)
		d.writeSectors += n(9)
		d.busyMs += n(12)
	}
	return d
}

// besideSummary says what the machine did between a and b, beside a step
// that took wall and ran in processes started after a (so none of them is
// in a). self is the bench's own process, whose reaped children include
// the step itself: only its own CPU counts.
func besideSummary(a, b machineSnap, wall time.Duration, self int, title func(pid int, name string) string) string {
	type use struct {
		who   string
		ticks int64
	}
	var uses []use
	var total int64
	for pid, after := range b.procs {
		before, ok := a.procs[pid]
		if !ok || before.start != after.start {
			continue
		}
		t := after.own - before.own
		if pid != self {
			t += after.kids - before.kids
		}
		if t <= 0 {
			continue
		}
		total += t
		who := after.name
		if pid == self {
			who = "the bench itself"
		} else if title != nil {
			who = title(pid, after.name)
		}
		uses = append(uses, use{who, t})
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].ticks > uses[j].ticks })
	var top []string
	for i, u := range uses {
		if i == 3 {
			break
		}
		top = append(top, fmt.Sprintf("%s %.2f s", u.who, float64(u.ticks)/clockTicks))
	}
	others := "nothing"
	if total > 0 {
		others = fmt.Sprintf("%.2f s of CPU (%s)", float64(total)/clockTicks, strings.Join(top, ", "))
	}
	const mb = 1e6
	return fmt.Sprintf("beside it %s; disks read %.0f MB, wrote %.0f MB, busy %.1f s of %.1f s; %.0f MB dirty at the start",
		others,
		float64((b.disk.readSectors-a.disk.readSectors)*512)/mb,
		float64((b.disk.writeSectors-a.disk.writeSectors)*512)/mb,
		float64(b.disk.busyMs-a.disk.busyMs)/1000, wall.Seconds(),
		float64(a.dirty)/mb)
}

// processTitle names a process by its command line as ps shows it
// (PostgreSQL's processes set theirs: "postgres: archiver …"), cut short.
func processTitle(pid int, name string) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	t := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if err != nil || t == "" {
		return name
	}
	if len(t) > 48 {
		t = t[:48] + "…"
	}
	return strconv.Quote(t)
}

func TestCPUOfReadsTheCPUAndStartFields(t *testing.T) {
	st := procfs.Stat{Comm: "postgres: a (b)", Fields: strings.Fields("S 1 2 3 0 -1 4194560 10 20 0 0 150 30 7 3 20 0 1 0 98765 1000 10")}
	p, ok := cpuOf(st)
	if !ok {
		t.Fatalf("cpuOf(%+v) failed", st)
	}
	if p.name != "postgres: a (b)" || p.own != 180 || p.kids != 10 || p.start != 98765 {
		t.Fatalf("cpuOf = %+v, want name %q, own 180, kids 10, start 98765", p, "postgres: a (b)")
	}
}

func TestBesideSummaryCountsOnlyProcessesThatRanBesideTheStep(t *testing.T) {
	const self = 1
	a := machineSnap{procs: map[int]procCPU{
		self: {name: "backup.test", start: 5, own: 100, kids: 0},
		10:   {name: "postgres", start: 7, own: 50, kids: 200}, // the archiver, reaping archive_command
		11:   {name: "idle", start: 8, own: 3},
		12:   {name: "reused", start: 9, own: 1},
	}, disk: diskCounters{readSectors: 0, writeSectors: 1000, busyMs: 100}, dirty: 2e6}
	b := machineSnap{procs: map[int]procCPU{
		self: {name: "backup.test", start: 5, own: 110, kids: 900}, // reaped the step itself: not counted
		10:   {name: "postgres", start: 7, own: 60, kids: 350},
		11:   {name: "idle", start: 8, own: 3},
		12:   {name: "other", start: 99, own: 500}, // a new process on a reused PID
		13:   {name: "the step", start: 100, own: 400},
	}, disk: diskCounters{readSectors: 2_000_000, writeSectors: 3_001_000, busyMs: 2600}}
	got := besideSummary(a, b, 3*time.Second, self, nil)
	for _, want := range []string{
		"beside it 1.70 s of CPU (postgres 1.60 s, the bench itself 0.10 s)",
		"read 1024 MB, wrote 1536 MB, busy 2.5 s of 3.0 s",
		"2 MB dirty at the start",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("besideSummary = %q, want it to contain %q", got, want)
		}
	}
}
