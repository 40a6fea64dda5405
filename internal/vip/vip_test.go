package vip

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper's own process: the test binary re-executed inside the test's
// network namespace with PGGUARD_VIP_TEST_HELPER set.
func TestMain(m *testing.M) {
	if os.Getenv("PGGUARD_VIP_TEST_HELPER") == "1" {
		if err := Serve(os.Stdin, os.Stdout, testAddr, testIface); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	testNS    = "pgguard-vipt"
	testIface = "vd0"
	testAddr  = "10.201.0.50/24"
)

// A helper told to stop while it is adding the address never leaves the
// address behind (chaos finding 13: a primary's host killed right after its
// promotion kept the address, because the stop's removal ran before the
// add's `ip` finished). The stop comes at a random moment of the add, many
// times; after each, the interface must be bare.
//
// The interface is one end of a veth pair inside the namespace (this
// kernel has no dummy device).
func TestStopDuringAddLeavesNoAddress(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates a network namespace with a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (apt-get install -y iproute2)")
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", testNS).Run()
	run("netns", "add", testNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", testNS).Run() })
	run("-n", testNS, "link", "add", testIface, "type", "veth", "peer", "name", testIface+"p")
	run("-n", testNS, "link", "set", testIface, "up")
	held := func() bool {
		out, err := exec.Command("ip", "-n", testNS, "-o", "-4", "addr", "show", "dev", testIface).CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr show: %v: %s", err, out)
		}
		return strings.Contains(string(out), " "+strings.Split(testAddr, "/")[0]+"/")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const rounds = 300
	for i := 0; i < rounds; i++ {
		cmd := exec.Command("ip", "netns", "exec", testNS, exe, "-test.run=^$")
		cmd.Env = []string{"PGGUARD_VIP_TEST_HELPER=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := NewClient(in, out)
		// One full add first, so the helper is past its start-up removal.
		if _, err := c.Set(true); err != nil {
			t.Fatalf("round %d: add: %v", i, err)
		}
		if _, err := c.Set(false); err != nil {
			t.Fatalf("round %d: del: %v", i, err)
		}
		if _, err := fmt.Fprintln(in, "add"); err != nil {
			t.Fatal(err)
		}
		// The stop lands somewhere in the add's `ip` run (a few ms).
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		// `ip netns exec` execs the helper in place: this is its pid.
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if held() {
			t.Fatalf("round %d of %d: the helper exited on SIGTERM and the address is still on %s", i+1, rounds, testIface)
		}
	}
}
