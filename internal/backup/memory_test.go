package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Memory bounds of a backup and a restore (issue 16), over a repository
// whose block index has far more entries than the backup has blocks:
//
//   - memoryRSSLimit is the peak resident set (ru_maxrss, which counts the
//     binary's pages read from disk, about 25 MiB of pgguard's) the
//     commands must stay under. pgguard before issue 16 took 200 to 570
//     MiB for a backup over an index of a million blocks, and a few
//     hundred thousand are enough for it to pass this limit many times.
//   - memoryDataLimit is the hard limit (RLIMIT_DATA, set with prlimit)
//     the commands run under, so that a regression fails fast instead of
//     taking the machine's memory. RLIMIT_AS cannot bound a Go program
//     usefully: the runtime reserves about 2 GiB of address space at
//     start whatever it uses. RLIMIT_DATA counts the writable mappings
//     the heap grows in (64 MiB arenas) and the binary's 33 MiB of BSS:
//     about 190 MiB for these commands at their current size. A cgroup's
//     memory.max would be the better bound, but no cgroup hierarchy may
//     be assumed writable where tests run.
//
// The commands run without GOMEMLIMIT, as people run them: their own
// default soft limit is part of what is tested.
const (
	memoryRSSLimit  = 64 << 20
	memoryDataLimit = 320 << 20
	// indexBlocks is the size of the generated block index: enough that
	// an index held as Go maps would take hundreds of MiB.
	indexBlocks = 400_000
)

func TestBackupAndRestoreStayUnderAMemoryLimit(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed to run the commands under a hard memory limit: %v", err)
	}
	if _, err := os.Stat(gnuTime); err != nil {
		t.Fatalf("GNU time measures the commands' peak RSS: apt-get install time (scripts/setup.sh does): %v", err)
	}
	e, pg := newRepoEnv(t, nil)
	pg.Pgbench(t, "-i", "-s", "10", "-q")
	fillIndex(t, e, indexBlocks)

	rss, out := e.underMemoryLimit("backup", "full", "-o", "json", "--channels", "4")
	t.Logf("backup full over an index of %d blocks: peak RSS %.1f MiB (limit %d MiB)", indexBlocks, mib(rss), memoryRSSLimit>>20)
	if rss > memoryRSSLimit {
		t.Errorf("backup full: peak RSS %.1f MiB, over the %d MiB limit\n%s", mib(rss), memoryRSSLimit>>20, lastLines(out, 5))
	}
	target := filepath.Join(e.dir, "restored")
	rss, out = e.underMemoryLimit("restore", "--target-dir", target, "--immediate", "--channels", "4")
	t.Logf("restore: peak RSS %.1f MiB (limit %d MiB)", mib(rss), memoryRSSLimit>>20)
	if rss > memoryRSSLimit {
		t.Errorf("restore: peak RSS %.1f MiB, over the %d MiB limit\n%s", mib(rss), memoryRSSLimit>>20, lastLines(out, 5))
	}
	// archive_command without an agent: a segment that does not compress
	// (random rows) is held three times while it is stored: as read, as
	// the zstd attempt given up at its size, as sealed (before 7c37e3d
	// the attempt also grew by reallocation).
	seg := filepath.Join(e.dir, "pg_wal-random", "0000000100000000000000F1")
	if err := os.MkdirAll(filepath.Dir(seg), 0o755); err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 16<<20)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, random, 0o644); err != nil {
		t.Fatal(err)
	}
	rss, out = e.underMemoryLimit("wal-push", "--channels", "1", seg)
	t.Logf("wal-push of a random segment: peak RSS %.1f MiB (limit %d MiB)", mib(rss), walPushRSSLimit>>20)
	if rss > walPushRSSLimit {
		t.Errorf("wal-push of a random segment: peak RSS %.1f MiB, over the %d MiB limit\n%s", mib(rss), walPushRSSLimit>>20, lastLines(out, 5))
	}
}

// walPushRSSLimit bounds one wal-push of a 16 MiB segment that does not
// compress, above the 64 MiB of a backup or a restore: 68-69 MiB
// measured (2026-12-06), 83-98 MiB before 7c37e3d and the collection
// after a given-up compression.
const walPushRSSLimit = 80 << 20

// fillIndex stores n distinct tiny blocks through the repository API, as
// a long history of backups would have left them: packs and index objects
// of the real format, which a backup must consult for every block it
// stores.
func fillIndex(t *testing.T, e *env, n int) {
	t.Helper()
	ctx := context.Background()
	r := e.openRepo()
	defer r.Close(ctx)
	start := time.Now()
	var block [24]byte
	binary.LittleEndian.PutUint64(block[8:], uint64(time.Now().UnixNano()))
	for i := range n {
		binary.LittleEndian.PutUint64(block[:], uint64(i))
		if _, stored, _, err := r.PutBlock(ctx, block[:]); err != nil || !stored {
			t.Fatalf("put generated block %d: stored %v, %v", i, stored, err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.acct.ChownTree(e.dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("index filled with %d generated blocks in %s", n, time.Since(start).Round(100*time.Millisecond))
}

// underMemoryLimit runs pgguard args -c config as the PostgreSQL account
// under RLIMIT_DATA memoryDataLimit, fails the test unless it exits 0,
// and returns its peak RSS and its stderr.
//
// The peak is GNU time's (%M, from wait4 of the pgguard it forks): the
// rusage of a child this test starts itself would not do, since Go starts
// children with vfork, and the kernel then counts the parent's own peak
// (this test process's, hundreds of MiB after fillIndex) in the child's.
func (e *env) underMemoryLimit(args ...string) (int64, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lim := strconv.Itoa(memoryDataLimit)
	peakFile := filepath.Join(e.dir, "peak-rss")
	// prlimit sets the limit on itself and execs time, which forks
	// pgguard (inheriting the limit) and writes its peak RSS in KiB.
	full := append([]string{"--data=" + lim + ":" + lim, "--", gnuTime, "-f", "%M", "-o", peakFile, e.bin}, append(args, "-c", e.cfgPath)...)
	cmd := exec.CommandContext(ctx, "prlimit", full...)
	e.acct.Apply(cmd)
	cmd.Dir = e.dir
	var env []string
	for _, kv := range filteredEnv() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GOGC=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("pgguard %s under RLIMIT_DATA %d MiB: %v (out of memory?)\n%s", strings.Join(args, " "), memoryDataLimit>>20, err, lastLines(stderr.String(), 15))
	}
	b, err := os.ReadFile(peakFile)
	if err != nil {
		e.t.Fatal(err)
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(lastLines(string(b), 1)), 10, 64)
	if err != nil {
		e.t.Fatalf("GNU time wrote %q: %v", b, err)
	}
	return kib << 10, stderr.String()
}

// gnuTime is GNU time (Debian's package time; scripts/setup.sh installs it).
const gnuTime = "/usr/bin/time"

func mib(n int64) float64 { return float64(n) / (1 << 20) }
