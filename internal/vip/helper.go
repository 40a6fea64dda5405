package vip

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/pdeath"
)

// StartHelper starts exe's `vip-helper` for address on iface with this
// process's rights (before the agent drops them) and returns the agent's
// end of it; stop closes the pipe, on which the helper removes the
// address and exits (killed if it has not after 5 s).
func StartHelper(exe, address, iface string) (c *Client, stop func(), err error) {
	cmd := exec.Command(exe, "vip-helper", "--address", address, "--interface", iface)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stderr = os.Stderr
	// If the agent dies, the pipe closes and the helper removes the
	// address; SIGTERM is only the fallback.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := pdeath.Start(cmd); err != nil {
		return nil, nil, fmt.Errorf("start the vip helper: %w", err)
	}
	stop = func() {
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	return NewClient(in, out), stop, nil
}
