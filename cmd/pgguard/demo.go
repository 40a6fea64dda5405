package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/spf13/cobra"
)

func newDemoCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole three-node cluster on this machine",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "/tmp/pgguard-demo", "directory for the demo cluster")
	var nodes, base int
	var withHAProxy, withWitness, withProxy bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Create and start the demo cluster; returns when it is healthy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemoUp(cmd.Context(), dir, nodes, base, demoExtras{haproxy: withHAProxy, witness: withWitness, proxy: withProxy}, cmd.OutOrStdout())
		},
	}
	up.Flags().IntVar(&nodes, "nodes", 3, "number of nodes")
	up.Flags().IntVar(&base, "base-port", 15432, "PostgreSQL port of the first node (etcd uses base-3000 and up, the agents' API base+3000 and up)")
	up.Flags().BoolVar(&withProxy, "proxy", false, "give every agent a built-in proxy: read-write on base+3200+i, read-only on base+3300+i")
	up.Flags().BoolVar(&withWitness, "witness", false, "add a witness, w1: an etcd member that votes and runs no PostgreSQL (e.g. --nodes 2 --witness)")
	up.Flags().BoolVar(&withHAProxy, "haproxy", false, "also run HAProxy in front of the nodes: read-write on base-1000, read-only on base-999")
	var endpointsOutput string
	endpoints := &cobra.Command{Use: "endpoints", Short: "Print where to reach the demo: every agent's API, HAProxy's ports when it runs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := demo.LoadLayout(dir)
			if err != nil {
				return usageError{err}
			}
			e := l.ClientEndpoints()
			return writeOutput(cmd.OutOrStdout(), endpointsOutput, e, func(w io.Writer) error {
				for i, u := range e.API {
					fmt.Fprintf(w, "api %-4s %s\n", l.Nodes[i], u)
				}
				if e.RW != "" {
					fmt.Fprintf(w, "built-in proxies: read-write %s, read-only %s\n", e.RW, e.RO)
				}
				if e.HAProxyRW != "" {
					fmt.Fprintf(w, "haproxy read-write %s, read-only %s\n", e.HAProxyRW, e.HAProxyRO)
				}
				return nil
			})
		}}
	endpoints.Flags().StringVarP(&endpointsOutput, "output", "o", "text", "text or json")
	cmd.AddCommand(up, endpoints,
		&cobra.Command{Use: "status", Short: "Show the demo cluster's status", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := demo.LoadLayout(dir)
				if err != nil {
					return usageError{err}
				}
				// Bounded: with every node down nothing answers.
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				defer cancel()
				r, err := l.StatusWithStore(ctx)
				if err != nil {
					return fmt.Errorf("status of the demo in %s: %w (are its nodes running? 'pgguard demo start NODE --dir %s')", dir, err, dir)
				}
				return r.WriteTable(cmd.OutOrStdout())
			}},
		nodeCommand("kill NODE", "Simulate losing NODE's host: kill -9 its agent and PostgreSQL (NODE 'primary': the current primary)", &dir, func(l demo.Layout, n string) error { return l.KillNode(n) }),
		nodeCommand("crash NODE", "Kill -9 only NODE's postmaster (the agent restarts it; NODE 'primary': the current primary)", &dir, func(l demo.Layout, n string) error { return l.KillPostmaster(n) }),
		nodeCommand("start NODE", "Start NODE's agent again", &dir, func(l demo.Layout, n string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			_, err = l.StartNode(exe, n)
			return err
		}),
		nodeCommand("stop NODE", "Stop NODE's agent and PostgreSQL cleanly", &dir, func(l demo.Layout, n string) error { return l.StopNode(n, 90*time.Second) }),
		&cobra.Command{Use: "dsn", Short: "Print a connection string that follows the primary across failovers", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := demo.LoadLayout(dir)
				if err != nil {
					return usageError{err}
				}
				fmt.Fprintln(cmd.OutOrStdout(), l.DSN())
				return nil
			}},
		&cobra.Command{Use: "down", Short: "Stop every process the demo started (the directory stays)", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				l, err := demo.LoadLayout(dir)
				if err != nil {
					return usageError{err}
				}
				var firstErr error
				if l.HAProxyPID() > 0 {
					if err := l.StopHAProxy(10 * time.Second); err != nil {
						firstErr = err
					}
					fmt.Fprintln(cmd.OutOrStdout(), "stopped haproxy")
				}
				for _, n := range l.Nodes {
					if l.AgentPID(n) == 0 && l.PostmasterPID(n) == 0 {
						continue
					}
					if err := l.StopNode(n, 90*time.Second); err != nil && firstErr == nil {
						firstErr = err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "stopped %s\n", n)
				}
				return firstErr
			}},
	)
	return cmd
}

func nodeCommand(use, short string, dir *string, fn func(demo.Layout, string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := demo.LoadLayout(*dir)
			if err != nil {
				return usageError{err}
			}
			node := args[0]
			if node == "primary" {
				// Whichever node leads now: the primary moves with every
				// failover, so scripts and the README need not guess.
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				r, err := l.Status(ctx)
				cancel()
				if err != nil || r.Leader == "" {
					return fmt.Errorf("which node is primary: no leader known (%v)", err)
				}
				node = r.Leader
			}
			if err := fn(l, node); err != nil {
				return usageError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: done\n", use[:len(use)-5]+" "+node)
			return nil
		}}
}

// demoExtras are what demo up runs besides the nodes.
type demoExtras struct{ haproxy, witness, proxy bool }

func runDemoUp(ctx context.Context, dir string, nodes, base int, x demoExtras, out io.Writer) error {
	withHAProxy, withWitness := x.haproxy, x.witness
	if nodes < 1 || nodes > 9 {
		return badInput("--nodes %d: choose 1 to 9", nodes)
	}
	if base < 4100 || base > demo.MaxBase {
		return badInput("--base-port %d: choose a port between 4100 and %d (etcd uses base-3000 and up, the agents' API base+3000 and up)", base, demo.MaxBase)
	}
	if withHAProxy {
		if _, err := exec.LookPath("haproxy"); err != nil {
			return badInput("--haproxy: haproxy is not installed: apt-get install -y haproxy (make setup does)")
		}
	}
	if old, err := demo.LoadLayout(dir); err == nil {
		for _, n := range old.Nodes {
			if old.AgentPID(n) > 0 {
				return badInput("a demo cluster already runs in %s (node %s): 'pgguard demo down --dir %s' first", dir, n, dir)
			}
		}
		return badInput("%s holds a stopped demo cluster: start its nodes with 'pgguard demo start NODE --dir %s', or remove the directory", dir, dir)
	}
	size := nodes
	if withWitness {
		size++
	}
	l := demo.NewLayout(dir, size, base)
	if withWitness {
		l.AddWitness()
	}
	if withHAProxy {
		l.WithHAProxy()
	}
	if x.proxy {
		l.WithProxy()
	}
	if err := l.CheckPortsFree(); err != nil {
		return usageError{err}
	}
	acct, err := osuser.Resolve("")
	if err != nil {
		return err
	}
	if err := l.Write(acct, l.WithBackups); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := l.InitRepository(exe, acct); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		pid, err := l.StartNode(exe, n)
		if err != nil {
			return err
		}
		if l.IsWitness(n) {
			fmt.Fprintf(out, "started %s (agent pid %d, a witness: etcd member only)\n", n, pid)
			continue
		}
		fmt.Fprintf(out, "started %s (agent pid %d, PostgreSQL on 127.0.0.1:%d)\n", n, pid, l.PGPorts[indexOf(l.Nodes, n)])
	}
	fmt.Fprintln(out, "waiting for the cluster to become healthy…")
	started := time.Now()
	r, err := l.WaitHealthy(ctx, 180*time.Second, func(status.Report) {})
	if err != nil {
		return fmt.Errorf("%w (agent logs: %s/NODE/agent.log)", err, dir)
	}
	fmt.Fprintf(out, "healthy after %s\n", time.Since(started).Round(100*time.Millisecond))
	if withHAProxy {
		pid, err := l.StartHAProxy()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "started haproxy (pid %d): read-write 127.0.0.1:%d, read-only 127.0.0.1:%d\n", pid, l.HAProxy[0], l.HAProxy[1])
	}
	if x.proxy {
		e := l.ClientEndpoints()
		fmt.Fprintf(out, "built-in proxies: read-write %s, read-only %s (psql 'host=%s port=%s user=postgres')\n", e.RW, e.RO,
			strings.Repeat("127.0.0.1,", len(l.ProxyRW)-len(l.Witnesses)-1)+"127.0.0.1", proxyPortList(l))
	}
	fmt.Fprintln(out)
	_ = r.WriteTable(out)
	installed, err := l.InstallJobs(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("install the default backup jobs: %w", err)
	}
	fmt.Fprintf(out, "\nBackups: repository %s (key %s), WAL archived from every primary; jobs:\n", l.RepoDir(), l.KeyFile())
	for _, j := range installed {
		fmt.Fprintf(out, "  %-14s %-7s %s\n", j.ID, j.Kind, j.Schedule.String())
	}
	fmt.Fprintf(out, `
Connect (follows the primary across failovers):
  psql '%s'
Status:     pgguard ctl -c %s/ctl.yaml status
Backups:    pgguard backups -c %s/n1/node.yaml      Jobs: pgguard jobs -c %s/ctl.yaml runs
Fail over:  pgguard demo kill %s --dir %s   (then: pgguard demo start %s --dir %s)
Stop:       pgguard demo down --dir %s
Store:      etcd over TLS, every client and peer with a certificate of the demo's CA (%s; ctl.yaml names ctl's)
Health:     curl -s http://127.0.0.1:%d/primary   (/replica, /read-only, /sync, /async, /health, /cluster; 'pgguard demo endpoints')
`, l.DSN(), dir, dir, dir, r.Leader, dir, r.Leader, dir, dir, l.CertsDir(), l.API[0])
	return nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// proxyPortList is the read-write proxy ports of the database nodes, for a
// libpq host list.
func proxyPortList(l demo.Layout) string {
	var ports []string
	for i, n := range l.Nodes {
		if !l.IsWitness(n) && i < len(l.ProxyRW) {
			ports = append(ports, strconv.Itoa(l.ProxyRW[i]))
		}
	}
	return strings.Join(ports, ",")
}
