package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
)

// A job's command is a real process here (sh), writing to the descriptor
// the variable names, as pgguard does through jobs.Report.
func TestJobCommandResultPipe(t *testing.T) {
	const msg = `{"version":1,"kind":"full","backup_id":"b1","bytes_read":10,"bytes_stored":4}`
	for _, tc := range []struct {
		name      string
		script    string
		noResult  bool
		failed    bool
		backupID  string
		maxWait   time.Duration
		errSaying string
	}{
		{name: "the message on the named descriptor is the run's result",
			script: `printf '%s\n' "$1" >&$PGGUARD_RESULT_FD; echo '{"id":"not this one"}'`, backupID: "b1"},
		{name: "a command that writes nothing: no result, distinct from a bad one",
			script: `echo '{"id":"human output is not read"}'`, noResult: true},
		{name: "a command that fails after its message: both are known",
			script: `printf '%s\n' "$1" >&3; exit 3`, failed: true, backupID: "b1"},
		{name: "a newer message: refused, not taken as no result",
			script: `echo '{"version":9}' >&3`, errSaying: "version 9"},
		{name: "a process left holding the pipe: no result after the grace, no hang",
			script: `sleep 3 & exit 0`, noResult: true, maxWait: 2 * time.Second, errSaying: "within"},
		{name: "a process left holding the pipe does not delay a message written",
			script: `printf '%s\n' "$1" >&3; sleep 3 & exit 0`, backupID: "b1", maxWait: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tc.script, "sh", msg)
			start := time.Now()
			res, resErr, runErr := runWithResult(cmd, 500*time.Millisecond)
			if took := time.Since(start); tc.maxWait > 0 && took > tc.maxWait {
				t.Fatalf("took %s", took)
			}
			if (runErr != nil) != tc.failed {
				t.Fatalf("command error %v, want failed %v", runErr, tc.failed)
			}
			if errors.Is(resErr, jobs.ErrNoResult) != tc.noResult {
				t.Fatalf("result error %v, want no result %v", resErr, tc.noResult)
			}
			if tc.errSaying != "" && (resErr == nil || !strings.Contains(resErr.Error(), tc.errSaying)) {
				t.Fatalf("result error %v does not say %q", resErr, tc.errSaying)
			}
			if tc.backupID != "" && (resErr != nil || res.BackupID != tc.backupID || res.BytesRead != 10 || res.BytesStored != 4) {
				t.Fatalf("result %+v, %v", res, resErr)
			}
		})
	}
}

// A job's command dies with the agent that started it: the helper below
// plays the agent, starts a long command through runWithResult, and is
// killed with SIGKILL; the command must be gone soon after.
func TestJobCommandEndsWithItsAgent(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	agent := exec.Command(os.Args[0], "-test.run=^TestHelperJobAgent$")
	agent.Env = append(os.Environ(), "PGGUARD_TEST_JOB_AGENT="+pidFile)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	var child int
	deadline := time.Now().Add(20 * time.Second)
	for child == 0 {
		if data, err := os.ReadFile(pidFile); err == nil {
			child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		if child == 0 && time.Now().After(deadline) {
			t.Fatal("the helper agent never reported its command's pid")
		}
		time.Sleep(20 * time.Millisecond) // polling a file the helper writes, with a deadline
	}
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil && strings.Contains(string(stat), ") Z ") {
			break // ended, waiting to be reaped by init
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("the job command (pid %d) still runs 10 s after its agent was killed", child)
		}
		time.Sleep(20 * time.Millisecond) // polling the process, with a deadline
	}
}

// TestHelperJobAgent is the agent of TestJobCommandEndsWithItsAgent; it
// does nothing unless that test started it.
func TestHelperJobAgent(t *testing.T) {
	pidFile := os.Getenv("PGGUARD_TEST_JOB_AGENT")
	if pidFile == "" {
		t.Skip("helper process of TestJobCommandEndsWithItsAgent; runs only when that test starts it")
	}
	cmd := exec.Command("sh", "-c", `echo $$ > "$0"; exec sleep 60`, pidFile)
	_, _, _ = runWithResult(cmd, time.Second)
}
