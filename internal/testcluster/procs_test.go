package testcluster

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestDescendantsFindsChildrenAndGrandchildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sh := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-sh, syscall.SIGKILL) // the group this test started
		_ = cmd.Wait()
	})
	var tree []int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if tree = Descendants(sh); len(tree) == 2 {
			break
		}
	}
	if len(tree) != 2 || !slices.Contains(tree, sh) {
		t.Fatalf("Descendants(%d) = %v, want the shell and its sleep", sh, tree)
	}
	sleep := tree[0]
	if sleep == sh {
		sleep = tree[1]
	}
	if self := Descendants(os.Getpid()); !slices.Contains(self, sh) || !slices.Contains(self, sleep) {
		t.Errorf("Descendants(test process) = %v, want it to hold %d and %d", self, sh, sleep)
	}
}
