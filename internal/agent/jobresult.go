package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/pdeath"
)

// resultGrace is how long a job's result message may come after the
// command ended: a process the command left running (a server it
// started) may hold the pipe's writing end, so its end never comes.
const resultGrace = 5 * time.Second

// runWithResult runs cmd with a pipe for its result message as an extra
// file descriptor (3), named in jobs.ResultFDEnv. It returns the message, or in
// resErr why there is none (jobs.ErrNoResult: the command wrote nothing),
// and in runErr how the command ended. It waits for the message at most
// grace after the command ended.
func runWithResult(cmd *exec.Cmd, grace time.Duration) (res jobs.Result, resErr, runErr error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return jobs.Result{}, jobs.ErrNoResult, fmt.Errorf("pipe for the job's result: %w", err)
	}
	defer rd.Close()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", jobs.ResultFDEnv, 3+len(cmd.ExtraFiles)))
	cmd.ExtraFiles = append(cmd.ExtraFiles, wr)
	// The command ends with the agent: a drill or backup left running
	// by an agent that was killed (its own restored server with it) was
	// found still going an hour later. SIGTERM, so that it cleans up.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	err = pdeath.Start(cmd)
	// The parent's writing end closes at once: the pipe ends when the
	// command (and whatever inherited it) is gone.
	wr.Close()
	if err != nil {
		return jobs.Result{}, jobs.ErrNoResult, err
	}
	type read struct {
		res jobs.Result
		err error
	}
	got := make(chan read, 1)
	go func() {
		res, err := jobs.ReadResult(rd)
		got <- read{res, err}
	}()
	runErr = cmd.Wait()
	select {
	case m := <-got:
		return m.res, m.err, runErr
	case <-time.After(grace):
	}
	rd.Close() // ends the read
	m := <-got
	if m.err != nil && !errors.Is(m.err, jobs.ErrNoResult) {
		m.err = fmt.Errorf("%w (no message within %s of the command's end)", jobs.ErrNoResult, grace)
	}
	return m.res, m.err, runErr
}
