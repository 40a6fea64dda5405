package testcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"

	"github.com/pgguard/pgguard/internal/pdeath"
)

// child is a server process a test started (PostgreSQL, the S3 gateway):
// at most one runs at a time, its output appended to a log file that
// outlives restarts.
type child struct {
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// start starts cmd with its output appended to the log and returns a
// channel closed once cmd has exited and been waited for. Starting while a
// process is running is an error.
func (c *child) start(cmd *exec.Cmd) (<-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil, errors.New("already running")
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Through pdeath: a child with a Pdeathsig (the S3 gateway) dies with
	// the test process, not with whichever thread happened to fork it (a
	// root restore's file threads end when it does).
	if err := pdeath.Start(cmd); err != nil {
		_ = logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	c.cmd, c.done = cmd, done
	return done, nil
}

// take returns the running process and its done channel and forgets them,
// for whoever stops it; cmd is nil when nothing runs.
func (c *child) take() (cmd *exec.Cmd, done <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd, done = c.cmd, c.done
	c.cmd, c.done = nil, nil
	return cmd, done
}
