// Package osuser decides which operating-system user runs PostgreSQL and the
// tools that touch its data directory. PostgreSQL refuses to run as root, so
// when pgguard itself runs as root it hands every such process to an
// unprivileged account (by default "postgres"); as any other user it runs
// them as itself. This package never changes the credentials of the calling
// process.
package osuser

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// DefaultRunAs is the account PostgreSQL runs under when pgguard is root.
const DefaultRunAs = "postgres"

// Account is the user that owns a data directory and runs PostgreSQL.
type Account struct {
	Name string
	UID  int
	GID  int
	Home string
	// Switch is true when the calling process must change credentials to
	// run as this account (it is root and the account is not).
	Switch bool
}

// Resolve returns the account PostgreSQL should run as. runAs is used only
// when the caller is root; empty means DefaultRunAs.
func Resolve(runAs string) (Account, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return Account{}, fmt.Errorf("look up current user: %w", err)
		}
		return Account{Name: u.Username, UID: os.Geteuid(), GID: os.Getegid(), Home: u.HomeDir}, nil
	}
	if runAs == "" {
		runAs = DefaultRunAs
	}
	u, err := user.Lookup(runAs)
	if err != nil {
		return Account{}, fmt.Errorf("running as root, PostgreSQL must run as an unprivileged user, but user %q does not exist: create it (e.g. apt-get install postgresql-common) or set run_as: %w", runAs, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return Account{}, fmt.Errorf("run_as %q is root: PostgreSQL refuses to run as root; name an unprivileged user", runAs)
	}
	return Account{Name: runAs, UID: uid, GID: gid, Home: u.HomeDir, Switch: true}, nil
}

// Apply makes cmd run as the account (a no-op when no switch is needed).
func (a Account) Apply(cmd *exec.Cmd) {
	if !a.Switch {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID)}
}

// ChownTree gives every file under root to the account (a no-op when no
// switch is needed).
func (a Account) ChownTree(root string) error {
	if !a.Switch {
		return nil
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, a.UID, a.GID)
	})
}

// MkdirAll creates dir (mode perm) and hands every directory it created to
// the account, and only those (a link swapped in for one of them since is
// changed itself, not what it points to).
func (a Account) MkdirAll(dir string, perm os.FileMode) error {
	var created []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		created = append(created, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	if !a.Switch {
		return nil
	}
	for _, p := range created {
		if err := os.Lchown(p, a.UID, a.GID); err != nil {
			return err
		}
	}
	return nil
}
