// Package pdeath starts child processes whose parent-death signal
// (SysProcAttr.Pdeathsig) means what its callers want: "when this process
// dies". Linux sends the signal when the thread that forked the child
// exits, not the process, and the Go runtime ends a thread whenever a
// goroutine locked to it returns (privdrop.FS's file threads do). A child
// forked on such a thread would be signalled while its parent lives on:
// a postmaster would get SIGQUIT from a restore that finished. Start forks
// every child on one thread that is locked for the life of the process.
package pdeath

import (
	"os/exec"
	"runtime"
	"sync"
)

type start struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	once   sync.Once
	starts chan start
)

// Start starts cmd as cmd.Start does, on a thread that never exits.
func Start(cmd *exec.Cmd) error {
	once.Do(func() {
		starts = make(chan start)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for s := range starts {
				s.done <- s.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	starts <- start{cmd: cmd, done: done}
	return <-done
}
