package main

import (
	"fmt"

	"github.com/pgguard/pgguard/internal/certs"
	"github.com/spf13/cobra"
)

func newCertsCommand() *cobra.Command {
	var dir string
	var nodes, hosts []string
	initCmd := &cobra.Command{
		Use:   "init --dir DIR --nodes n1,n2,n3 [--host n1=10.0.0.11]",
		Short: "Make a CA and a certificate per node and for ctl; again, to add a node (existing keys are kept)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := certs.InitNodes(dir, nodes, hosts); err != nil {
				return err
			}
			const tls = "  etcd:\n    tls:\n      ca_file: %s\n      cert_file: %s\n      key_file: %s\n"
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "CA and certificates in %s (keys 0600; keep ca.key off the nodes once every certificate is made).\n", dir)
			fmt.Fprintf(out, "In each node.yaml (use https:// in client_url, peer_url and initial_cluster):\n"+tls,
				certs.CAFile(dir), certs.CertFile(dir, "NODE"), certs.KeyFile(dir, "NODE"))
			fmt.Fprintf(out, "In ctl.yaml:\n"+tls, certs.CAFile(dir), certs.CertFile(dir, certs.ClientName), certs.KeyFile(dir, certs.ClientName))
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory for the CA, the certificates and their keys (created 0700)")
	initCmd.Flags().StringSliceVar(&nodes, "nodes", nil, "node names, as in node.yaml")
	initCmd.Flags().StringArrayVar(&hosts, "host", nil, "NODE=ADDRESS: an address or DNS name the node's store is reached at besides loopback (repeatable)")
	cmd := &cobra.Command{Use: "certs", Short: "Make the certificates that secure the store (a small CA for a site without one)"}
	cmd.AddCommand(initCmd)
	return cmd
}
