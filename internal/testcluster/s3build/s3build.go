// Package s3build builds the S3 gateway the tests run (versitygw, from
// source, once per machine). It imports nothing heavy, so that `make test`
// can start the build at once, in the background, while it compiles and
// runs everything else: on a machine without the cached binary (CI's
// clean machine) the build takes about three minutes of two busy cores,
// which the first test to start an S3 server otherwise waited for.
package s3build

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Version is the versitygw release the tests run.
const Version = "v1.8.0"

const module = "github.com/versity/versitygw/cmd/versitygw"

// Binary returns the path of the versitygw binary, building it into
// <user cache>/pgguard/bin/versitygw-<version>/ if it is not there yet.
// A file lock makes concurrent callers (test binaries, the background
// build of `make test`) wait for one build instead of each building it.
// logf, if not nil, is told when a build starts.
func Binary(logf func(format string, args ...any)) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory for versitygw: %w (set HOME or XDG_CACHE_HOME)", err)
	}
	dir := filepath.Join(cache, "pgguard", "bin", "versitygw-"+Version)
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("open build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // built by another process while we waited
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("build versitygw: the go command is not on PATH: %w", err)
	}
	if logf != nil {
		logf("building versitygw %s into %s (once per machine)", Version, dir)
	}
	// Installed beside its place and renamed into it: a caller that
	// finds bin without taking the lock never runs a half-copied binary.
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", fmt.Errorf("build versitygw: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(goBin, "install", module+"@"+Version)
	cmd.Dir = dir // outside our module, so its go.mod does not apply
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build versitygw: go install %s@%s: %w\n%s", module, Version, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "versitygw"), bin); err != nil {
		return "", fmt.Errorf("build versitygw: %w", err)
	}
	return bin, nil
}
