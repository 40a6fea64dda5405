// Command pgguard-wal is archive_command's and restore_command's fast
// path. PostgreSQL runs it as it would run pgguard, with the same
// arguments:
//
//	archive_command = '/usr/local/bin/pgguard-wal wal-push -c /etc/pgguard/node.yaml %p'
//	restore_command = '/usr/local/bin/pgguard-wal wal-fetch -c /etc/pgguard/node.yaml %f %p'
//
// While the agent streams WAL into the repository, the segment PostgreSQL
// hands archive_command is stored already (or will be within a few hundred
// milliseconds): pgguard-wal then only checks the stream's record of it
// against the file and exits, a few milliseconds after it started. The
// whole pgguard binary needs tens of milliseconds before its first line
// runs (hundreds on a busy host), and a switchover's clean shutdown waits
// for archive_command.
//
// For restore_command it asks the agent beside the server, over a local
// socket, to fetch the file from the repository the agent keeps open
// (walspool.AskAgent): a few milliseconds where pgguard wal-fetch starts
// the whole binary and opens the repository (a key derivation) for every
// call, and a promotion waits for several of them.
//
// In every other case — no record, another content, no agent answering,
// another sub-command — it becomes pgguard (exec, same arguments, same
// process), which does the work itself.
//
// It imports only the standard library and two small packages of ours
// that do too; that is what keeps it fast, and what a change must keep.
package main

import (
	"context"
	"errors"
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
	if len(args) == 5 && args[0] == "wal-fetch" && args[1] == "-c" {
		// Exactly the agent's restore_command; any other flag (another
		// repository, --prefetch, -o) is pgguard's to serve.
		fetch(args[2], args[3], args[4])
	}
	self, err := os.Executable()
	if err != nil {
		fail("pgguard-wal: cannot find its own path to find pgguard beside it: %v", err)
	}
	exe := filepath.Join(filepath.Dir(self), "pgguard")
	err = syscall.Exec(exe, append([]string{exe}, args...), os.Environ())
	fail("pgguard-wal: run %s: %v (install pgguard in the same directory as pgguard-wal)", exe, err)
}

// fetch answers restore_command through the agent beside the server,
// which keeps the repository of config open: exit 0 when the file is in
// place, 1 when the archive lacks it. It returns when no agent answered,
// and pgguard then does the fetch itself.
func fetch(config, name, dest string) {
	// PostgreSQL runs restore_command in the data directory, %p relative
	// to it.
	dir, err := os.Getwd()
	if err != nil {
		return
	}
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(dir, dest)
	}
	switch answer, err := walspool.AskAgent(dir, config, name, dest, fetchLimit); {
	case errors.Is(err, walspool.ErrNoAgent):
		return
	case err != nil:
		// Into PostgreSQL's log; pgguard then tries, and says more.
		fmt.Fprintf(os.Stderr, "pgguard-wal: the agent could not fetch %s (%v); running pgguard wal-fetch\n", name, err)
		return
	case answer == walspool.Found:
		os.Exit(0)
	default:
		os.Exit(1) // the quiet "no such file" PostgreSQL expects
	}
}

// fetchLimit: the agent gives up on a request after 2 minutes; a little
// later, pgguard-wal runs pgguard.
const fetchLimit = 2*time.Minute + 10*time.Second

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
