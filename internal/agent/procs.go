package agent

import (
	"log/slog"
	"os"
	"runtime"
)

// limitProcs runs the agent's goroutines on one processor unless the
// environment sets GOMAXPROCS. The agent waits on the network, its
// child PostgreSQL and its timers; what costs CPU (backups, restores,
// wal-push) runs in child processes, which keep the default. With two
// processors, each of the ~50 wake-ups a second of an idle agent (its
// etcd member's raft ticks and heartbeats, the loop) hands work between
// threads (a spinning thread, a futex wake); on one there is nothing to
// hand over. Three idle demo agents, side by side over the same 60 s:
// 7.5 % of a core with two, 6.3 % with one (issue 16).
func limitProcs(log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if prev := runtime.GOMAXPROCS(1); prev != 1 {
		log.Debug("agent runs on one processor (set GOMAXPROCS to change)", "was", prev)
	}
}
