package main

import (
	"fmt"
	"github.com/pgguard/pgguard/internal/vip"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

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
			// The address helper keeps the rights the agent drops.
			var vipClient *vip.Client
			if cfg.VIP.Address != "" {
				c, stop, err := startVIPHelper(cfg)
				if err != nil {
					return err
				}
				defer stop()
				vipClient = c
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
			return agent.New(cfg, agent.Options{Account: acct, Log: log, ConfigPath: abs, Executable: exe, VIP: vipClient}).Run(cmd.Context())
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

// startVIPHelper starts `pgguard vip-helper` with this process's rights
// (before they are dropped) and returns the agent's end of it; stop closes
// the pipe, on which the helper removes the address and exits.
func startVIPHelper(cfg config.Config) (*vip.Client, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, "vip-helper", "--address", cfg.VIP.Address, "--interface", cfg.VIP.Interface)
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
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start the vip helper: %w", err)
	}
	stop := func() {
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	}
	return vip.NewClient(in, out), stop, nil
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
