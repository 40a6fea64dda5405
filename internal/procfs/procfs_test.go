package procfs_test

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/procfs"
)

// A shell started by the test, with a sleep under it: its parent, its
// child, their names, states, user and working directory; and a zombie,
// which is not alive.
func TestAShellAndItsSleepAsProcSeesThem(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-sh, syscall.SIGKILL) // the group this test started
		_ = cmd.Wait()
	})
	if got := procfs.Parents()[sh]; got != os.Getpid() {
		t.Fatalf("parent of the shell %d = %d, want this test's process %d", sh, got, os.Getpid())
	}
	// The shell's child is first a fork of the shell, named sh, and
	// becomes sleep at its exec: wait for that.
	var kids []int
	var st procfs.Stat
	var ok bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if kids = procfs.Children(sh); len(kids) == 1 {
			if st, ok = procfs.ReadStat(kids[0]); ok && st.Comm == "sleep" {
				break
			}
		}
	}
	if len(kids) != 1 {
		t.Fatalf("Children(%d) = %v, want its one sleep", sh, kids)
	}
	if !ok || st.Comm != "sleep" || st.PPID != sh || !st.Live() || len(st.Fields) < 12 {
		t.Errorf("ReadStat(%d) = %+v, %v; want a live sleep under %d with the fields up to utime", kids[0], st, ok, sh)
	}
	if !procfs.Alive(kids[0]) {
		t.Errorf("Alive(%d) = false for a running sleep", kids[0])
	}
	if uid, ok := procfs.UID(kids[0]); !ok || uid != os.Getuid() {
		t.Errorf("UID(%d) = %d, %v; want %d", kids[0], uid, ok, os.Getuid())
	}
	var d, other syscall.Stat_t
	if err := syscall.Stat(dir, &d); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(os.TempDir(), &other); err != nil {
		t.Fatal(err)
	}
	if !procfs.InDir(kids[0], &d) || procfs.InDir(kids[0], &other) || procfs.InDir(os.Getpid(), &d) {
		t.Errorf("InDir: the sleep works in %s, this test elsewhere", dir)
	}

	// The shell's sleep killed and not yet reaped by it: a zombie.
	_ = syscall.Kill(-sh, syscall.SIGSTOP)
	_ = syscall.Kill(kids[0], syscall.SIGKILL)
	var last procfs.Stat
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if last, _ = procfs.ReadStat(kids[0]); last.State == 'Z' {
			break
		}
	}
	if last.State != 'Z' || procfs.Alive(kids[0]) {
		t.Errorf("a killed, unreaped sleep: state %q, Alive %v; want a zombie that is not alive", last.State, procfs.Alive(kids[0]))
	}
	if slices.Contains(procfs.PIDs(), 0) {
		t.Errorf("PIDs holds 0")
	}
}
