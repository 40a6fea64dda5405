// Command pgguard-wal is archive_command's fast path. PostgreSQL runs it
// as it would run pgguard, with the same arguments:
//
//	archive_command = '/usr/local/bin/pgguard-wal wal-push -c /etc/pgguard/node.yaml %p'
//
// While the agent streams WAL into the repository, the segment PostgreSQL
// hands archive_command is stored already (or will be within a few hundred
// milliseconds): pgguard-wal then only checks the stream's record of it
// against the file and exits, a few milliseconds after it started. The
// whole pgguard binary needs tens of milliseconds before its first line
// runs (hundreds on a busy host), and a switchover's clean shutdown waits
// for archive_command. In every other case — no record, another content,
// another sub-command — it becomes pgguard (exec, same arguments, same
// process), which pushes the segment itself.
//
// It imports only the standard library and two small packages of ours
// that do too; that is what keeps it fast, and what a change must keep.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/walspool"
	"github.com/pgguard/pgguard/internal/walstats"
)

func main() {
	args := os.Args[1:]
	if len(args) >= 2 && args[0] == "wal-push" && !asksForOutput(args) {
		start := time.Now()
		path := args[len(args)-1]
		if ok, err := walspool.Archived(context.Background(), path); err == nil && ok {
			// PostgreSQL runs archive_command in the data directory.
			if dir, err := os.Getwd(); err == nil {
				_ = walstats.Record(walstats.Path(dir), time.Since(start), true, time.Now())
			}
			os.Exit(0)
		}
	}
	self, err := os.Executable()
	if err != nil {
		fail("pgguard-wal: cannot find its own path to find pgguard beside it: %v", err)
	}
	exe := filepath.Join(filepath.Dir(self), "pgguard")
	err = syscall.Exec(exe, append([]string{exe}, args...), os.Environ())
	fail("pgguard-wal: run %s: %v (install pgguard in the same directory as pgguard-wal)", exe, err)
}

// asksForOutput: -o/--output wants pgguard's report of the push.
func asksForOutput(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "--output") {
			return true
		}
	}
	return false
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(2)
}
