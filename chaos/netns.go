package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// The names and addresses of one run. Runs can go side by side on one
// machine, each in its own slot (UseSlot): slot 0 is the default, slot k
// names its namespaces pgc<k>- and uses 10.200.k.0/24.
var (
	// Prefix starts the name of every network namespace the run creates;
	// `make chaos-clean` removes whatever carries it.
	Prefix = "pgc-"
	// Subnet exists only inside the run's namespaces. While they exist
	// the root namespace holds an unreachable route for it, so that no
	// packet for it can ever leave this machine.
	Subnet = "10.200.0.0/24"
	// ClientAddr is the workload client's address, in its own namespace.
	ClientAddr = "10.200.0.100"
	// VIPAddr is the virtual IP of the VIP runs and test, inside Subnet.
	VIPAddr = "10.200.0.50"
	// slot is the run's slot, net its first three octets.
	slot = 0
	net3 = "10.200.0"
)

// MaxSlot is the highest slot: at most MaxSlot+1 runs side by side.
const MaxSlot = 9

// UseSlot sets the names and addresses of slot k. Call it before any
// other function of the package.
func UseSlot(k int) error {
	if k < 0 || k > MaxSlot {
		return fmt.Errorf("slot %d: use 0 to %d, one per run that goes side by side", k, MaxSlot)
	}
	slot, net3 = k, fmt.Sprintf("10.200.%d", k)
	Prefix = "pgc-"
	if k > 0 {
		Prefix = fmt.Sprintf("pgc%d-", k)
	}
	Subnet, ClientAddr, VIPAddr = net3+".0/24", net3+".100", net3+".50"
	return nil
}

// lockPath is the file a run of slot k holds locked while it runs: its
// namespace names are fixed, so a second run of the slot would tear down
// the first's.
func lockPath(k int) string {
	if k == 0 {
		return "/run/pgguard-chaos.lock"
	}
	return fmt.Sprintf("/run/pgguard-chaos-%d.lock", k)
}

// LockSlot takes the run's slot, waiting for it when wait is set. The
// returned file holds the lock until closed.
func LockSlot(wait bool) (*os.File, error) {
	f, err := os.OpenFile(lockPath(slot), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("another chaos run holds %s: wait for it to end (its namespaces are named %s*), or give this run another slot (-slot, SLOT=)", lockPath(slot), Prefix)
	}
	return f, nil
}

// RunsBeside counts the chaos runs of other slots that hold their lock
// now: the load a trial ran beside.
func RunsBeside() int {
	n := 0
	for k := 0; k <= MaxSlot; k++ {
		if k == slot {
			continue
		}
		f, err := os.OpenFile(lockPath(k), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
			n++
		}
		f.Close()
	}
	return n
}

// Net is the network of one chaos run: a bridge namespace holding a
// Linux bridge, one namespace per node and one for the client, each joined
// to the bridge by a veth pair whose bridge-side end is named after it.
type Net struct {
	Nodes []string          // node names, in order
	Addrs map[string]string // node name → address in Subnet
}

// NodeNS is the namespace of a node (or of "client").
func NodeNS(name string) string { return Prefix + name }

// bridgeNS is the namespace holding the run's bridge.
func bridgeNS() string { return Prefix + "br" }

// run executes a command and returns its output in the error.
func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNS runs a command inside namespace ns.
func inNS(ns string, args ...string) error {
	return run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// CreateNet builds the network for nodes. On error it removes what it
// created.
func CreateNet(nodes []string) (*Net, error) {
	n := &Net{Nodes: nodes, Addrs: map[string]string{}}
	if err := CleanNet(); err != nil {
		return nil, fmt.Errorf("remove leftovers of an earlier run: %w", err)
	}
	steps := [][]string{
		{"ip", "route", "replace", "unreachable", Subnet},
		{"ip", "netns", "add", bridgeNS()},
		{"ip", "-n", bridgeNS(), "link", "set", "lo", "up"},
		{"ip", "-n", bridgeNS(), "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", bridgeNS(), "link", "set", "br0", "up"},
	}
	members := append([]string{"client"}, nodes...)
	for i, m := range members {
		addr := ClientAddr
		if m != "client" {
			addr = fmt.Sprintf("%s.%d", net3, 11+i-1)
			n.Addrs[m] = addr
		}
		ns := NodeNS(m)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "add", "v-" + m, "netns", bridgeNS(), "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "-n", bridgeNS(), "link", "set", "v-" + m, "master", "br0", "up"},
			[]string{"ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			_ = CleanNet()
			return nil, err
		}
	}
	return n, nil
}

// CleanNet removes every namespace named with Prefix (their veths and the
// bridge go with them) and the unreachable route. It is safe to call when
// nothing exists.
func CleanNet() error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if strings.HasPrefix(name, Prefix) {
			if err := run("ip", "netns", "del", name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	routes, _ := exec.Command("ip", "route", "show", Subnet).Output()
	if strings.Contains(string(routes), "unreachable") {
		if err := run("ip", "route", "del", "unreachable", Subnet); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Isolate drops, inside node's namespace, all traffic to and from the
// listed peers (other nodes), leaving every other address reachable.
func (n *Net) Isolate(node string, peers []string) error {
	for _, p := range peers {
		for _, rule := range [][]string{
			{"iptables", "-I", "INPUT", "-s", n.Addrs[p], "-j", "DROP"},
			{"iptables", "-I", "OUTPUT", "-d", n.Addrs[p], "-j", "DROP"},
		} {
			if err := inNS(NodeNS(node), rule...); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsolatePort drops, inside node's namespace, the TCP traffic of port
// exchanged with the listed peers (either side's port), leaving every
// other connection alone.
func (n *Net) IsolatePort(node string, peers []string, port int) error {
	p := fmt.Sprint(port)
	for _, peer := range peers {
		for _, dir := range []string{"--dport", "--sport"} {
			if err := inNS(NodeNS(node), "iptables", "-I", "INPUT", "-s", n.Addrs[peer], "-p", "tcp", dir, p, "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	return nil
}

// BlockPort drops, inside node's namespace, TCP traffic to or from port.
func (n *Net) BlockPort(node string, port int) error {
	p := fmt.Sprint(port)
	for _, rule := range [][]string{
		{"iptables", "-I", "INPUT", "-p", "tcp", "--dport", p, "-j", "DROP"},
		{"iptables", "-I", "INPUT", "-p", "tcp", "--sport", p, "-j", "DROP"},
	} {
		if err := inNS(NodeNS(node), rule...); err != nil {
			return err
		}
	}
	return nil
}

// Heal removes every rule Isolate or BlockPort added in node's namespace.
func (n *Net) Heal(node string) error {
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		if err := inNS(NodeNS(node), "iptables", "-F", chain); err != nil {
			return err
		}
	}
	return nil
}

// SetLink takes the bridge-side end of node's veth down or up: the node
// loses (or regains) every peer and the client at once, as with a pulled
// cable; its own address and routes stay.
func (n *Net) SetLink(node string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run("ip", "-n", bridgeNS(), "link", "set", "v-"+node, state)
}
