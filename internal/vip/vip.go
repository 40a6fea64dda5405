// Package vip moves a virtual IP address with the primary (HA-12). The
// agent runs as the database account and may not change addresses, so the
// address is added and removed by a helper process that keeps root's
// rights and does nothing else: it reads "add" or "del" lines from the
// agent and answers "ok" or "err ..."; when the agent's end of the pipe
// closes (the agent exited or died) it removes the address and exits, so
// a dead agent never leaves its node holding the address.
package vip

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Serve is the helper's loop: address is CIDR ("10.0.0.50/24"), iface the
// interface that carries it.
func Serve(in io.Reader, out io.Writer, address, iface string) error {
	ip, _, err := net.ParseCIDR(address)
	if err != nil {
		return fmt.Errorf("vip address %q: %w", address, err)
	}
	// A new agent starts without the address, whatever an agent killed
	// before it left behind (chaos: a killed primary's address stayed on
	// its host and the next primary's made two holders).
	if err := del(address, iface); err != nil {
		return err
	}
	// Asked to stop (the agent's parent-death signal, a shutdown): the
	// address goes first. The removal waits for a command under way: an
	// "add" whose `ip` is still running when the signal comes would
	// otherwise put the address back after the removal, on a host whose
	// agent is dead (chaos finding 13: a node killed just after its
	// promotion kept the address).
	var mu sync.Mutex
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		<-sigs
		mu.Lock() // held until the exit: no command runs after this
		_ = del(address, iface)
		os.Exit(0)
	}()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var err error
		mu.Lock()
		switch strings.TrimSpace(sc.Text()) {
		case "add":
			err = add(address, iface, ip.String())
		case "del":
			err = del(address, iface)
		default:
			err = errors.New("unknown command")
		}
		mu.Unlock()
		if err != nil {
			fmt.Fprintf(out, "err %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintln(out, "ok")
		}
	}
	// The agent is gone: so is the address.
	mu.Lock()
	return del(address, iface)
}

func add(address, iface, ip string) error {
	if out, err := exec.Command("ip", "addr", "replace", address, "dev", iface).CombinedOutput(); err != nil {
		return fmt.Errorf("ip addr replace %s dev %s: %v: %s", address, iface, err, strings.TrimSpace(string(out)))
	}
	// Gratuitous ARP, so that neighbours forget the former holder's MAC
	// (best effort: Debian's arping, from iputils-arping). In the
	// background: arping waits for its deadline, and the agent's loop
	// must not wait with it.
	if path, err := exec.LookPath("arping"); err == nil {
		cmd := exec.Command(path, "-U", "-c", "1", "-w", "1", "-I", iface, ip)
		if cmd.Start() == nil {
			go func() { _ = cmd.Wait() }()
		}
	}
	return nil
}

func del(address, iface string) error {
	out, err := exec.Command("ip", "addr", "del", address, "dev", iface).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Cannot assign") && !strings.Contains(string(out), "not found") {
		return fmt.Errorf("ip addr del %s dev %s: %v: %s", address, iface, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Client is the agent's end of the helper's pipes.
type Client struct {
	mu   sync.Mutex
	in   io.WriteCloser
	out  *bufio.Reader
	held bool
}

// NewClient talks to a helper through its standard input and output.
func NewClient(stdin io.WriteCloser, stdout io.Reader) *Client {
	return &Client{in: stdin, out: bufio.NewReader(stdout)}
}

// Held reports whether the address was last added (and not removed).
func (c *Client) Held() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// Set adds (hold) or removes the address; it does nothing when the state
// is already so, and reports whether it changed anything.
func (c *Client) Set(hold bool) (bool, error) {
	if c == nil {
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == hold {
		return false, nil
	}
	cmd := "del"
	if hold {
		cmd = "add"
	}
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return false, fmt.Errorf("vip helper: %w", err)
	}
	type reply struct {
		line string
		err  error
	}
	ch := make(chan reply, 1)
	go func() { l, err := c.out.ReadString('\n'); ch <- reply{l, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return false, fmt.Errorf("vip helper: %w", r.err)
		}
		if l := strings.TrimSpace(r.line); l != "ok" {
			return false, fmt.Errorf("vip helper: %s", strings.TrimPrefix(l, "err "))
		}
	case <-time.After(5 * time.Second):
		return false, errors.New("vip helper did not answer within 5s")
	}
	c.held = hold
	return true, nil
}
