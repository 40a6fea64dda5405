package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pgguard/pgguard/internal/agent"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/spf13/cobra"
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
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return usageError{err}
			}
			acct, err := osuser.Resolve(cfg.RunAs)
			if err != nil {
				return usageError{err}
			}
			if acct.Switch {
				if err := dropPrivileges(cfg, acct); err != nil {
					return err
				}
				acct = osuser.Account{Name: acct.Name, UID: acct.UID, GID: acct.GID, Home: acct.Home}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", cfg.Name)
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(cfgPath)
			if err != nil {
				return err
			}
			return agent.New(cfg, agent.Options{Account: acct, Log: log, ConfigPath: abs, Executable: exe}).Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "node configuration file")
	return cmd
}

// dropPrivileges turns a root agent into the database account for good,
// after creating the directories it needs: PostgreSQL refuses root, and an
// agent that owns the data directory needs no more.
func dropPrivileges(cfg config.Config, acct osuser.Account) error {
	var dirs []string
	if !cfg.Witness {
		dirs = append(dirs, parentDir(cfg.Postgres.DataDir))
	}
	if cfg.Embedded() {
		dirs = append(dirs, parentDir(cfg.Etcd.Embed.DataDir))
	}
	for _, d := range dirs {
		if err := acct.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s for %s: %w", d, acct.Name, err)
		}
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("drop supplementary groups: %w", err)
	}
	if err := syscall.Setgid(acct.GID); err != nil {
		return fmt.Errorf("switch to group of %s: %w", acct.Name, err)
	}
	if err := syscall.Setuid(acct.UID); err != nil {
		return fmt.Errorf("switch to user %s: %w", acct.Name, err)
	}
	os.Setenv("HOME", acct.Home)
	os.Setenv("USER", acct.Name)
	return nil
}

func parentDir(p string) string {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return p
}
