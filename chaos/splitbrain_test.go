package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// The ack-overlap detector on a real split brain (issue 17 item 2): two
// plain PostgreSQL servers, n1 primary and n2 its streaming standby, no
// agent. The suite's workload writes to n1 (three writers) and to n2 (one
// more, refused while n2 is in recovery) and probes both. n1 is frozen
// with SIGSTOP, n2 promoted, n1 released: both take writes for about
// 50 ms, then n1 is killed. The acknowledgements must show the split
// brain; the probe rounds, a sample every 100 ms, may or may not (the test
// logs what they saw, and how the acknowledgements showed it: overlapping
// writes of the two, or n1's writes after its release on either side of
// n2's, on n1's old timeline).
func TestAckOverlapsSeeTwoPrimariesForFiftyMilliseconds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PostgreSQL servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := testcluster.StartPostgres(t, testcluster.PGOptions{Conf: []string{"cluster_name = 'n1'"}})
	standbyDir := filepath.Join(testcluster.Scratch(t, "pgguard-split-"), "data")
	base := exec.Command(filepath.Join(testcluster.PGBinDir, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port()),
		"-U", "postgres", "-D", standbyDir, "-R", "-X", "stream", "--no-sync")
	primary.Account().Apply(base)
	if out, err := base.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	standby := testcluster.StartPostgres(t, testcluster.PGOptions{DataDir: standbyDir, Conf: []string{"cluster_name = 'n2'"}})
	if got := standby.QueryString(t, "SELECT pg_is_in_recovery()"); got != "true" {
		t.Fatalf("n2 in recovery: %s, want true", got)
	}

	dir := t.TempDir()
	client := buildClient(t, dir)
	dsn := func(p *testcluster.Postgres) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", p.Port())
	}
	run := exec.Command(client, "run", "-dsn", dsn(primary), "-route", "n2="+dsn(standby),
		"-nodes", fmt.Sprintf("n1=127.0.0.1:%d,n2=127.0.0.1:%d", primary.Port(), standby.Port()),
		"-dir", dir, "-clients", "3", "-interval", "20ms", "-probe", "100ms", "-probe-timeout", probeTimeout.String())
	logf, err := os.Create(filepath.Join(dir, "client.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	run.Stdout, run.Stderr = logf, logf
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = run.Wait(); close(exited) }()
	stopClient := func() {
		_ = run.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = run.Process.Kill()
			<-exited
		}
	}
	defer stopClient()
	if err := waitAcks(ctx, dir, time.Now(), 30, 30*time.Second); err != nil {
		t.Fatalf("the workload did not write to n1: %v", err)
	}

	frozen := processTree(t, primary.DataDir())
	signalAll := func(sig syscall.Signal) {
		for _, pid := range frozen {
			_ = syscall.Kill(pid, sig)
		}
	}
	// Never leave a server stopped behind, whatever fails.
	t.Cleanup(func() { signalAll(syscall.SIGCONT) })
	signalAll(syscall.SIGSTOP)
	frozenAt := time.Now()
	conn, err := pgx.Connect(ctx, dsn(standby))
	if err != nil {
		t.Fatal(err)
	}
	var promoted bool
	err = conn.QueryRow(ctx, "SELECT pg_promote(true, 30)").Scan(&promoted)
	conn.Close(context.Background())
	if err != nil || !promoted {
		t.Fatalf("pg_promote on n2: %v (promoted %v)", err, promoted)
	}
	testcluster.WaitUntil(t, 30*time.Second, "n2 acknowledges writes", func() (bool, string) {
		acks, _ := ReadAcks(dir)
		n := 0
		for _, a := range acks {
			if a.Server == "n2" {
				n++
			}
		}
		return n >= 3, fmt.Sprintf("%d writes acknowledged by n2", n)
	})
	// Both primaries take writes for about 50 ms; then every process of
	// n1 is killed at once (a postmaster alone would leave backends that
	// finish their commits).
	signalAll(syscall.SIGCONT)
	released := time.Now()
	time.Sleep(50 * time.Millisecond) // fault schedule: the double-primary window under test
	signalAll(syscall.SIGKILL)
	window := time.Since(released)
	primary.Kill()
	time.Sleep(300 * time.Millisecond) // fault schedule: n2 alone takes writes
	stopClient()

	acks, err := ReadAcks(dir)
	if err != nil {
		t.Fatal(err)
	}
	rounds, err := ReadRounds(dir)
	if err != nil {
		t.Fatal(err)
	}
	n1After := 0
	for _, a := range acks {
		if a.Server == "n1" && a.At.After(released) {
			n1After++
		}
	}
	split := AckOverlaps(acks)
	probeSplits := 0
	for _, r := range rounds {
		if len(r.Writable) > 1 {
			probeSplits++
		}
	}
	t.Logf("n1 frozen %s, both writable for %s (n1 acknowledged %d writes after its release); acknowledgements: %d writes in overlaps of n1 and n2 lasting %.3fs in all (first: %s); probe rounds: %d of %d saw both writable",
		released.Sub(frozenAt).Round(time.Millisecond), window.Round(time.Millisecond), n1After, split.Writes, split.Span.Seconds(), split.Example, probeSplits, len(rounds))
	if n1After == 0 {
		t.Fatalf("n1 acknowledged nothing after its release: no split brain was made (client log: %s)", filepath.Join(dir, "client.log"))
	}
	if !split.Checked || split.Writes == 0 {
		t.Fatalf("the acknowledgements of two primaries were not reported: %+v", split)
	}
	if !strings.Contains(split.Example, "n1") || !strings.Contains(split.Example, "n2") {
		t.Fatalf("the overlap does not name both servers: %s", split.Example)
	}
	var sysids = map[string]bool{}
	for _, a := range acks {
		if a.SysID == "" || a.InRecovery {
			t.Fatalf("write %d carries no server identity or was committed in recovery: %+v", a.ID, a)
		}
		sysids[a.SysID] = true
	}
	if len(sysids) != 1 {
		t.Fatalf("system identifiers %v: n2 was cloned from n1, want one", sysids)
	}
}

// processTree is the postmaster of a data directory (postmaster.pid) and
// its children, the backends included.
func processTree(t *testing.T, dataDir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	pids := []int{pm}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// its closing parenthesis.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pm) {
			pids = append(pids, pid)
		}
	}
	return pids
}
