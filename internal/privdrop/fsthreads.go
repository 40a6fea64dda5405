package privdrop

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pgguard/pgguard/internal/osuser"
)

// FS runs file-system calls with the file-system identity of a database
// account, for a process that must stay root for other work (a restore
// run as root reads a repository only root may read, and writes a data
// directory only as the account). The calls run on OS threads of their
// own whose file-system user and group are the account's and which have
// no supplementary groups: the kernel then checks every open, create,
// remove and mode change as it would for the account (changing the
// file-system uid from 0 also clears the file capabilities such as
// CAP_DAC_OVERRIDE and CAP_CHOWN from the thread), and what they create
// is the account's without a chown. The threads are never handed back to
// the Go scheduler: each ends with its goroutine.
//
// Only the path-based calls need to run here; reading and writing a file
// opened here can happen anywhere.
type FS struct {
	calls chan fsCall
	wg    sync.WaitGroup
	once  sync.Once
}

type fsCall struct {
	fn   func() error
	done chan error
}

// NewFS starts threads (at least one) with acct's file-system identity.
// When acct needs no switch (this process is not root, or is the account
// already), it starts none and Do calls fn directly.
func NewFS(acct osuser.Account, threads int) (*FS, error) {
	f := &FS{}
	if !acct.Switch {
		return f, nil
	}
	f.calls = make(chan fsCall)
	ready := make(chan error, max(threads, 1))
	for range max(threads, 1) {
		f.wg.Add(1)
		go f.serve(acct, ready)
	}
	var errs []error
	for range max(threads, 1) {
		if err := <-ready; err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// serve takes the calls on a locked thread that is acct's for file
// access; it never unlocks the thread, so the thread exits with it.
func (f *FS) serve(acct osuser.Account, ready chan<- error) {
	defer f.wg.Done()
	runtime.LockOSThread()
	if err := becomeForFiles(acct); err != nil {
		ready <- err
		for c := range f.calls { // not reached in NewFS's failure path; keeps Do from hanging
			c.done <- err
		}
		return
	}
	ready <- nil
	for c := range f.calls {
		c.done <- c.fn()
	}
}

// becomeForFiles makes the calling thread (only it: the raw system calls
// bypass Go's all-threads credential change) acct's for file access, and
// checks that it took.
func becomeForFiles(acct osuser.Account) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("drop supplementary groups of a file thread: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETFSGID, uintptr(acct.GID), 0, 0); e != 0 {
		return fmt.Errorf("take group %d for file access: %w", acct.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETFSUID, uintptr(acct.UID), 0, 0); e != 0 {
		return fmt.Errorf("take user %s for file access: %w", acct.Name, e)
	}
	// setfsuid reports no failure of its own: it returns the previous
	// value, so a second call with the same id returns the one in force.
	uid, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, uintptr(acct.UID), 0, 0)
	gid, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, uintptr(acct.GID), 0, 0)
	if int(uid) != acct.UID || int(gid) != acct.GID {
		return fmt.Errorf("file access as %s (uid %d, gid %d) did not take: the thread has uid %d, gid %d", acct.Name, acct.UID, acct.GID, uid, gid)
	}
	return nil
}

// Do runs fn with the account's file-system identity and returns its
// error. fn must not start goroutines that touch paths.
func (f *FS) Do(fn func() error) error {
	if f == nil || f.calls == nil {
		return fn()
	}
	done := make(chan error, 1)
	f.calls <- fsCall{fn: fn, done: done}
	return <-done
}

// Close ends the threads once their calls are done. Do must not be
// called after Close.
func (f *FS) Close() {
	if f == nil || f.calls == nil {
		return
	}
	f.once.Do(func() { close(f.calls) })
	f.wg.Wait()
}
