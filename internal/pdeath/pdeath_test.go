package pdeath

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

var errMainThread = errors.New("on the main thread")

// A child started through Start outlives the exit of a locked thread that
// asked for it; one started with plain cmd.Start on such a thread does
// not (which is what Start exists for, and shows the test can fail).
func TestChildOutlivesTheThreadThatAskedForIt(t *testing.T) {
	run := func(startFn func(*exec.Cmd) error) *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		// The goroutine must not be on the process's main thread, which
		// the runtime parks instead of ending when a locked goroutine
		// returns.
		for tries := 0; ; tries++ {
			errc := make(chan error, 1)
			go func() {
				runtime.LockOSThread() // never unlocked: this thread exits with the goroutine
				if syscall.Gettid() == syscall.Getpid() {
					errc <- errMainThread
					return
				}
				errc <- startFn(cmd)
			}()
			err := <-errc
			if err == nil {
				break
			}
			if err != errMainThread || tries > 10 {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	plain := run((*exec.Cmd).Start)
	viaStart := run(Start)

	// The plain child dies once its forking thread is gone.
	waited := make(chan error, 1)
	go func() { waited <- plain.Wait() }()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("plain child ended with %v, want SIGKILL from its parent thread's death", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a child forked on a thread that exited was not signalled within 10 s: the test cannot show what Start prevents")
	}
	// The child started through Start is still running.
	if err := viaStart.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("child started through Start is gone after the asking thread exited: %v", err)
	}
}
