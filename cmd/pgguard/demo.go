package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/spf13/cobra"
)

func newDemoCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{Use: "demo", Short: "Run a whole three-node cluster on this machine"}
	cmd.PersistentFlags().StringVar(&dir, "dir", "/tmp/pgguard-demo", "directory for the demo cluster")
	req := demo.UpRequest{}
	up := &cobra.Command{Use: "up", Short: "Create and start the demo cluster; returns when it is healthy", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			req.Dir, req.Executable = dir, exe
			_, err = demo.Up(cmd.Context(), req, cmd.OutOrStdout())
			return err
		}}
	up.Flags().IntVar(&req.Nodes, "nodes", 3, "number of nodes")
	up.Flags().IntVar(&req.Base, "base-port", 15432, "PostgreSQL port of the first node (etcd uses base-3000 and up, the agents' API base+3000 and up)")
	up.Flags().BoolVar(&req.Proxy, "proxy", false, "give every agent a built-in proxy: read-write on base+3200+i, read-only on base+3300+i")
	up.Flags().BoolVar(&req.Witness, "witness", false, "add a witness, w1: an etcd member that votes and runs no PostgreSQL (e.g. --nodes 2 --witness)")
	up.Flags().BoolVar(&req.HAProxy, "haproxy", false, "also run HAProxy in front of the nodes: read-write on base-1000, read-only on base-999")
	var endpointsOutput string
	endpoints := layoutCommand("endpoints", "Print where to reach the demo: every agent's API, HAProxy's ports when it runs", &dir,
		func(_ context.Context, l demo.Layout, out io.Writer) error {
			e := l.ClientEndpoints()
			return writeOutput(out, endpointsOutput, e, func(w io.Writer) error { return e.WriteText(w, l.Nodes) })
		})
	endpoints.Flags().StringVarP(&endpointsOutput, "output", "o", "text", "text or json")
	cmd.AddCommand(up, endpoints,
		layoutCommand("status", "Show the demo cluster's status", &dir, func(ctx context.Context, l demo.Layout, out io.Writer) error {
			// Bounded: with every node down nothing answers.
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			r, err := l.StatusWithStore(ctx)
			if err != nil {
				return fmt.Errorf("status of the demo in %s: %w (are its nodes running? 'pgguard demo start NODE --dir %s')", dir, err, dir)
			}
			return r.WriteTable(out)
		}),
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
		layoutCommand("dsn", "Print a connection string that follows the primary across failovers", &dir, func(_ context.Context, l demo.Layout, out io.Writer) error {
			fmt.Fprintln(out, l.DSN())
			return nil
		}),
		layoutCommand("down", "Stop every process the demo started (the directory stays)", &dir, func(_ context.Context, l demo.Layout, out io.Writer) error {
			return l.Down(out)
		}),
	)
	return cmd
}

// layoutCommand is a demo command without arguments that works on the
// demo in *dir.
func layoutCommand(use, short string, dir *string, fn func(context.Context, demo.Layout, io.Writer) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := demo.LoadLayout(*dir)
			if err != nil {
				return badinput.Wrap(err)
			}
			return fn(cmd.Context(), l, cmd.OutOrStdout())
		}}
}

func nodeCommand(use, short string, dir *string, fn func(demo.Layout, string) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := demo.LoadLayout(*dir)
			if err != nil {
				return badinput.Wrap(err)
			}
			node, err := l.Node(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := fn(l, node); err != nil {
				return badinput.Wrap(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: done\n", use[:len(use)-5]+" "+node)
			return nil
		}}
}
