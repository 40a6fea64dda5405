// Package privdrop turns an agent started as root into its database
// account for good: PostgreSQL refuses root, and an agent that owns the
// data directory needs no more. It first creates, as root, the
// directories the account must own. It is the only place that changes the
// credentials of the calling process; anything that must keep root's
// rights (the virtual IP helper) is started before it runs. FS is the
// other way: threads of a process that stays root which touch files only
// as the account (a restore run as root writes through them).
package privdrop

import (
	"fmt"
	"os"
	"syscall"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/osuser"
)

// AgentDirs are the directories an agent of cfg creates before it drops
// root: the parents of the data directory and of the embedded store's.
func AgentDirs(cfg config.Config) []string {
	var dirs []string
	if !cfg.Witness {
		dirs = append(dirs, parentDir(cfg.Postgres.DataDir))
	}
	if cfg.Embedded() {
		dirs = append(dirs, parentDir(cfg.Etcd.Embed.DataDir))
	}
	return dirs
}

// To creates dirs owned by acct, then switches this process to acct: no
// supplementary groups, acct's group and user, and HOME and USER set to
// acct's. It returns the account as it is now: no further switch needed.
func To(acct osuser.Account, dirs []string) (osuser.Account, error) {
	for _, d := range dirs {
		if err := acct.MkdirAll(d, 0o700); err != nil {
			return acct, fmt.Errorf("create %s for %s: %w", d, acct.Name, err)
		}
	}
	if err := syscall.Setgroups(nil); err != nil {
		return acct, fmt.Errorf("drop supplementary groups: %w", err)
	}
	if err := syscall.Setgid(acct.GID); err != nil {
		return acct, fmt.Errorf("switch to group of %s: %w", acct.Name, err)
	}
	if err := syscall.Setuid(acct.UID); err != nil {
		return acct, fmt.Errorf("switch to user %s: %w", acct.Name, err)
	}
	os.Setenv("HOME", acct.Home)
	os.Setenv("USER", acct.Name)
	return osuser.Account{Name: acct.Name, UID: acct.UID, GID: acct.GID, Home: acct.Home}, nil
}

// parentDir is the directory holding p, trailing slashes ignored ("/a/b/"
// → "/a"); a path without a parent is returned as it is.
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
