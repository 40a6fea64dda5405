package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pgguard/pgguard/internal/agent"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/privdrop"
	"github.com/pgguard/pgguard/internal/vip"
)

func newAgentCommand() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "agent -c node.yaml",
		Short: "Run the node agent: supervise the local PostgreSQL and take part in elections",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return badInput("agent: -c node.yaml is required")
			}
			cfg, err := config.LoadAgent(cfgPath)
			if err != nil {
				return badinput.Wrap(err)
			}
			acct, err := osuser.Resolve(cfg.RunAs)
			if err != nil {
				return badinput.Wrap(err)
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			// The address helper keeps the rights the agent drops.
			var vipClient *vip.Client
			if cfg.VIP.Address != "" {
				c, stop, err := vip.StartHelper(exe, cfg.VIP.Address, cfg.VIP.Interface)
				if err != nil {
					return err
				}
				defer stop()
				vipClient = c
			}
			if acct.Switch {
				if acct, err = privdrop.To(acct, privdrop.AgentDirs(cfg)); err != nil {
					return err
				}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", cfg.Name)
			abs, err := filepath.Abs(cfgPath)
			if err != nil {
				return err
			}
			return agent.New(cfg, agent.Options{Account: acct, Log: log, ConfigPath: abs, Executable: exe, VIP: vipClient}).Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "node configuration file")
	return cmd
}

func newVIPHelperCommand() *cobra.Command {
	var address, iface string
	cmd := &cobra.Command{
		Use:    "vip-helper --address CIDR --interface IFACE",
		Short:  "Add or remove the virtual IP on the agent's request (started by the agent; not for people)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return vip.Serve(os.Stdin, os.Stdout, address, iface)
		},
	}
	cmd.Flags().StringVar(&address, "address", "", "CIDR")
	cmd.Flags().StringVar(&iface, "interface", "", "interface")
	return cmd
}
