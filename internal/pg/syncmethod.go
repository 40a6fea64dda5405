package pg

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// initSyncMethod is the recovery_init_sync_method this server starts
// with ("" leaves PostgreSQL's default, fsync).
//
// After a crash PostgreSQL makes the whole data directory durable before
// it replays WAL. With the default it opens and fsyncs every file, one
// by one: 0.75-1.3 s of a postmaster crash's 1.5-2.1 s outage on the demo
// (about 1,000 files), where syncfs, one call per file system, took about
// 10 ms. syncfs is used where it is as safe: PostgreSQL 14 or later (the
// setting's first release), not a fork with renamed programs (its server
// may not know the setting and would refuse to start), and Linux 5.8 or
// later (earlier kernels do not report syncfs's write errors to the
// caller, PostgreSQL's documentation warns). postgresql.parameters can
// set it either way.
func initSyncMethod(dataDir string, renamed bool, kernel string) string {
	if !syncfsSafe(renamed, kernel) {
		return ""
	}
	v, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return ""
	}
	if major, err := strconv.Atoi(strings.TrimSpace(string(v))); err != nil || major < 14 {
		return ""
	}
	return "syncfs"
}

// syncfsSafe is whether syncfs may stand in for a fsync of each file:
// Linux 5.8 or later (earlier kernels do not report syncfs's write errors
// to the caller) and PostgreSQL's own programs (a fork with renamed ones
// may lack the options that turn their own sync off).
func syncfsSafe(renamed bool, kernel string) bool {
	return !renamed && kernelAtLeast(kernel, 5, 8)
}

// kernelAtLeast reports whether a Linux release string ("6.1.0-18-amd64")
// is at least major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimLeftFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
