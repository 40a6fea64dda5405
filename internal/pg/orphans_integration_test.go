package pg_test

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

	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/procfs"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// After a SIGKILL of the postmaster alone, its archiver stays in the
// archive_command it is waiting for with the old shared memory attached,
// and a new postmaster would refuse to start until the command returns
// ("pre-existing shared memory block is still in use"). Start ends such
// orphans, the command with them, and the server starts at the first try.
func TestStartEndsWhatAKilledPostmasterLeft(t *testing.T) {
	p := testcluster.StartPostgres(t, testcluster.PGOptions{Conf: []string{
		"archive_mode = on",
		"archive_command = 'sleep 120'",
	}})
	p.Exec(t, "CREATE TABLE t AS SELECT 1 AS x")
	p.Exec(t, "SELECT pg_switch_wal()")
	dir, err := filepath.EvalSymlinks(p.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	// The archiver has started its command: a sleep working in the data
	// directory.
	var sleep int
	testcluster.WaitUntil(t, 30*time.Second, "the archiver running archive_command", func() (bool, string) {
		sleep = 0
		for _, pid := range inDir(dir) {
			if comm(pid) == "sleep" {
				sleep = pid
			}
		}
		return sleep != 0, fmt.Sprintf("processes in the data directory: %v", describe(inDir(dir)))
	})
	pm := postmasterPID(t, dir)
	if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitUntil(t, 30*time.Second, "the postmaster gone", func() (bool, string) {
		return !procfs.Alive(pm), fmt.Sprintf("postmaster %d still there", pm)
	})
	// What this test is about: the archiver outlives its postmaster.
	var left []int
	for _, pid := range inDir(dir) {
		if comm(pid) == "postgres" {
			left = append(left, pid)
		}
	}
	if len(left) == 0 {
		t.Fatalf("no server process outlived the postmaster (processes in the data directory: %v): nothing to end", describe(inDir(dir)))
	}

	// The test started the server with its port as an argument; Start
	// runs postgres -D alone (the agent's configuration names the port).
	conf, err := os.OpenFile(filepath.Join(dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(conf, "port = %d\n", p.Port())
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "postgres.log")
	inst := pg.New(pg.Options{Name: "n1", BinDir: testcluster.PGBinDir, DataDir: p.DataDir(), ListenAddress: "127.0.0.1", Port: p.Port(),
		Superuser: "postgres", ReplUser: "replicator", Account: p.Account(), LogFile: logFile})
	ctx := context.Background()
	if err := inst.Start(ctx, time.Minute); err != nil {
		log, _ := os.ReadFile(logFile)
		t.Fatalf("start after the postmaster's SIGKILL, with %v left behind: %v\n%s", describe(left), err, log)
	}
	t.Cleanup(func() { _ = inst.Stop("immediate", 30*time.Second) })
	log, _ := os.ReadFile(logFile)
	if !strings.Contains(string(log), "pgguard: ended") {
		t.Errorf("the server log does not say which processes were ended:\n%s", log)
	}
	if strings.Contains(string(log), "still in use") {
		t.Errorf("a start was refused for the old shared memory:\n%s", log)
	}
	for _, pid := range append(left, sleep) {
		if procfs.Alive(pid) {
			t.Errorf("process %d (%s) of the dead postmaster still runs", pid, comm(pid))
		}
	}
}

// inDir lists the live processes whose working directory is dir.
func inDir(dir string) []int {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return nil
	}
	var out []int
	for _, pid := range procfs.PIDs() {
		if procfs.InDir(pid, &st) && procfs.Alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func describe(pids []int) []string {
	var out []string
	for _, pid := range pids {
		out = append(out, fmt.Sprintf("%d %s", pid, comm(pid)))
	}
	return out
}

func comm(pid int) string { st, _ := procfs.ReadStat(pid); return st.Comm }

func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// Start never ends a single-user server (postmaster.pid names it negated:
// it refuses to start instead), nor a process of another account working
// in the data directory under the server's name. Stand-ins: copies of
// sleep named postgres.
func TestStartLeavesASingleUserServerAndOtherAccountsAlone(t *testing.T) {
	acct := testcluster.Account(t)
	if acct.UID == os.Getuid() {
		t.Fatalf("this test needs to run as root with a PostgreSQL account of its own (got uid %d for both)", acct.UID)
	}
	dir := testcluster.Scratch(t, "pgguard-orphans-")
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "postgres")
	sleep, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fake, sleep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := acct.ChownTree(dir); err != nil {
		t.Fatal(err)
	}
	start := func(asAccount bool) *exec.Cmd {
		cmd := exec.Command(fake, "60")
		cmd.Dir = data
		if asAccount {
			acct.Apply(cmd)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	single := start(true)
	other := start(false)
	lock := filepath.Join(data, "postmaster.pid")
	if err := os.WriteFile(lock, []byte(fmt.Sprintf("-%d\n%s\n", single.Process.Pid, data)), 0o600); err != nil {
		t.Fatal(err)
	}
	inst := pg.New(pg.Options{Name: "n1", BinDir: testcluster.PGBinDir, DataDir: data, ListenAddress: "127.0.0.1", Port: testcluster.FreePort(t),
		Superuser: "postgres", ReplUser: "replicator", Account: acct, LogFile: filepath.Join(dir, "postgres.log")})
	err = inst.Start(context.Background(), 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "single-user") {
		t.Fatalf("start beside a single-user server: %v, want a refusal naming it", err)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Errorf("the single-user server's lock file: %v, want it left", err)
	}
	// With the single-user server gone, its lock is stale; the other
	// account's stand-in is no orphan of this server.
	_ = single.Process.Kill()
	_ = single.Wait()
	ended := inst.EndOrphans(time.Second)
	if len(ended) != 0 {
		t.Errorf("ended %v, want nothing ended", ended)
	}
	if !procfs.Alive(other.Process.Pid) {
		t.Errorf("the other account's process %d was ended", other.Process.Pid)
	}
}
