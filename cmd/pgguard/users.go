package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/cliout"
	"github.com/pgguard/pgguard/internal/ctlconn"
	"github.com/pgguard/pgguard/internal/rest"
	"github.com/spf13/cobra"
)

// newCtlUsersCommand builds `ctl users add|list|remove`: the REST API's
// users, their roles and tokens.
func newCtlUsersCommand(opts *ctlOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "API users: add (prints the token once), list, remove"}
	withUsers := func(cmd *cobra.Command, fn func(ctx context.Context, u ctlUsers, out io.Writer) error) error {
		return withConn(cmd, opts, 10*time.Second, func(ctx context.Context, c *ctlconn.Conn, out io.Writer) error { return fn(ctx, c.Users, out) })
	}
	var b rest.AddUserBody
	var role, passwordFile string
	add := &cobra.Command{Use: "add NAME --role viewer|operator|admin [--password-file F] [--replace]", Short: "Add a user; prints its token, which is stored nowhere else",
		Args: exactArgs(1, "give the user's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUsers(cmd, func(ctx context.Context, u ctlUsers, out io.Writer) error {
				var err error
				if b.Name, b.Role = args[0], auth.Role(role); passwordFile != "" {
					if b.Password, err = cliout.SecretFile("--password-file", passwordFile); err != nil {
						return err
					}
				}
				nu, err := u.AddUser(ctx, b)
				if err != nil {
					return err
				}
				return compactOutput(out, opts.output, nu, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "user %s (%s); token (shown once):\n%s\n", nu.User.Name, nu.User.Role, nu.Token)
					return err
				})
			})
		}}
	add.Flags().StringVar(&role, "role", "viewer", "viewer (reads), operator (switchover, pause, jobs, backups, drills) or admin (everything)")
	add.Flags().StringVar(&passwordFile, "password-file", "", "a file holding the console password (at least 12 characters)")
	add.Flags().BoolVar(&b.Replace, "replace", false, "replace an existing user: a new token, role and password")
	list := &cobra.Command{Use: "list", Short: "List the users and their roles", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withUsers(cmd, func(ctx context.Context, u ctlUsers, out io.Writer) error {
				us, err := u.ListUsers(ctx)
				if err != nil {
					return err
				}
				return compactOutput(out, opts.output, us, func(w io.Writer) error { return auth.WriteUsers(w, us) })
			})
		}}
	remove := &cobra.Command{Use: "remove NAME", Short: "Remove a user: its token and console sessions stop working", Args: exactArgs(1, "give the user's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withUsers(cmd, func(ctx context.Context, u ctlUsers, out io.Writer) error { return u.RemoveUser(ctx, args[0]) })
		}}
	cmd.AddCommand(add, list, remove)
	return cmd
}

type ctlUsers = ctlconn.Users
