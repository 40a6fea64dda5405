package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/spf13/cobra"
)

type ctlOptions struct {
	configPath string
	output     string
}

func newCtlCommand() *cobra.Command {
	opts := &ctlOptions{}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Operate a cluster: status, history",
	}
	cmd.PersistentFlags().StringVarP(&opts.configPath, "config", "c", "ctl.yaml", "ctl configuration (cluster name and etcd endpoints)")
	cmd.PersistentFlags().StringVarP(&opts.output, "output", "o", "table", "output format: table or json")
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show every member's role, state, timeline, WAL positions and lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCtlStatus(cmd.Context(), opts, cmd.OutOrStdout())
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "history",
		Short: "List the cluster history: every decision and step of every node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCtlHistory(cmd.Context(), opts, cmd.OutOrStdout())
		},
	})
	return cmd
}

func openCtlStore(opts *ctlOptions) (*dcs.Store, config.Ctl, error) {
	if opts.output != "table" && opts.output != "json" {
		return nil, config.Ctl{}, badInput("-o %q: use table or json", opts.output)
	}
	cfg, err := config.LoadCtl(opts.configPath)
	if err != nil {
		return nil, cfg, usageError{err}
	}
	store, err := dcs.Open(dcs.Options{Endpoints: cfg.Etcd.Endpoints, DialTimeout: cfg.Etcd.DialTimeout.D(), Cluster: cfg.Cluster, TTL: 4 * time.Second})
	return store, cfg, err
}

func runCtlStatus(ctx context.Context, opts *ctlOptions, out io.Writer) error {
	store, cfg, err := openCtlStore(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := demo.ReadStatus(sctx, store, cfg.Cluster)
	if err != nil {
		return fmt.Errorf("status of cluster %s: %w", cfg.Cluster, err)
	}
	if opts.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return r.WriteTable(out)
}

func runCtlHistory(ctx context.Context, opts *ctlOptions, out io.Writer) error {
	store, cfg, err := openCtlStore(opts)
	if err != nil {
		return err
	}
	defer store.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	events, err := store.History(sctx, time.Time{})
	if err != nil {
		return fmt.Errorf("history of cluster %s: %w", cfg.Cluster, err)
	}
	if opts.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(events)
	}
	for _, e := range events {
		target := ""
		if e.Target != "" {
			target = " → " + e.Target
		}
		fmt.Fprintf(out, "%s  %-4s %-15s%s  %s  [%s]\n", e.Time.Format("2006-01-02 15:04:05.000"), e.Node, e.Action, target, e.Reason, e.Result)
	}
	return nil
}
