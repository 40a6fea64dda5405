package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
)

// scriptPath is the fixed PATH a job script runs with: nothing of the
// agent's environment is passed on.
const scriptPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// checkScripts refuses a job whose definition this node does not allow: a
// script given as a shell string (an older release's, or written straight
// into the store), a malformed reference, or a name that this node's
// jobs.scripts does not list.
func (r *jobRunner) checkScripts(j jobs.Job) error {
	if err := j.Validate(); err != nil {
		return err
	}
	var bad []string
	for role, s := range j.Scripts() {
		if _, ok := r.a.cfg.Jobs.Scripts[s.Name]; !ok {
			bad = append(bad, fmt.Sprintf("%s %q is not allow-listed on node %s (jobs.scripts in node.yaml)", role, s.Name, r.a.cfg.Name))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// runScript runs an allow-listed script without a shell, in its own
// process group, with only env (the job's PGGUARD_* variables) and a fixed
// PATH, under jobs.script_timeout. Its output goes to this node's log, line
// by line; the run record keeps only which script ran and how it ended.
func (r *jobRunner) runScript(ctx context.Context, role string, j jobs.Job, s *jobs.Script, env []string, summary *bytes.Buffer) error {
	a := r.a
	took, err := runLocal(ctx, a.cfg.Jobs.Scripts[s.Name], s.Args, env, a.cfg.Jobs.ScriptTimeout.D(), "jobs.script_timeout", func(line string) {
		a.log.Info("job script output", "job", j.ID, "script", s.Name, "role", role, "line", line)
	})
	if err == nil {
		fmt.Fprintf(summary, "%s %s: ok in %s\n", role, s.Name, took)
		return nil
	}
	err = fmt.Errorf("%s %w", s.Name, err)
	fmt.Fprintf(summary, "%s %v (output in the log of node %s)\n", role, err, a.cfg.Name)
	return err
}

// runLocal runs an executable this node's configuration names, without a
// shell, in its own process group (killed whole at the timeout), with only
// env and a fixed PATH, from /. Each line of its output goes to logLine.
// The error says how it ended ("exited with status 3", "timed out after
// 30s (setting)").
func runLocal(ctx context.Context, path string, args, env []string, timeout time.Duration, setting string, logLine func(string)) (time.Duration, error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(sctx, path, args...)
	cmd.Env = append([]string{scriptPath}, env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out := &scriptLog{log: logLine}
	cmd.Stdout, cmd.Stderr = out, out
	started := time.Now()
	err := cmd.Run()
	out.flush()
	took := time.Since(started).Round(time.Millisecond)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return took, nil
	case errors.Is(sctx.Err(), context.DeadlineExceeded):
		return took, fmt.Errorf("timed out after %s (%s)", timeout, setting)
	case errors.As(err, &exit):
		return took, fmt.Errorf("exited with status %d", exit.ExitCode())
	}
	return took, err
}

// scriptLog hands a script's output to the node's log one line at a time
// (a line longer than 4 KiB is cut).
type scriptLog struct {
	log     func(string)
	partial []byte
}

func (w *scriptLog) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			if len(w.partial) > 4096 {
				w.log(string(w.partial[:4096]) + "…")
				w.partial = w.partial[:0]
			}
			return len(p), nil
		}
		w.log(string(w.partial[:min(i, 4096)]))
		w.partial = w.partial[i+1:]
	}
}

func (w *scriptLog) flush() {
	if len(w.partial) > 0 {
		w.log(string(w.partial))
		w.partial = nil
	}
}
