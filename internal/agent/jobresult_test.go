package agent

import (
	"errors"
	"os/exec"
	"strings"
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
