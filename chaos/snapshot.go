package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// replicationQueries are what ReplicationSnapshot asks every node: enough
// to tell why a standby does not stream (finding 25) — where it replays
// and receives, what its receiver says, what it is configured to follow,
// and, on the primary, who streams and which slots hold what.
var replicationQueries = []string{
	`SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_receive_lsn() AS received, pg_last_wal_replay_lsn() AS replayed,
	        CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS replay_pause,
	        CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn() END AS wal_lsn,
	        (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
	        (SELECT redo_lsn FROM pg_control_checkpoint()) AS checkpoint_redo,
	        (SELECT min_recovery_end_lsn FROM pg_control_recovery()) AS min_recovery_end,
	        current_setting('primary_slot_name') AS primary_slot_name,
	        regexp_replace(current_setting('primary_conninfo'), 'password=\S+', 'password=…', 'g') AS primary_conninfo,
	        current_setting('restore_command') AS restore_command,
	        current_setting('recovery_target_timeline') AS recovery_target_timeline`,
	`SELECT pid, status, receive_start_lsn, receive_start_tli, written_lsn, flushed_lsn, received_tli, last_msg_receipt_time, slot_name, sender_host FROM pg_stat_wal_receiver`,
	`SELECT pid, application_name, state, sent_lsn, flush_lsn, replay_lsn, sync_state, backend_start FROM pg_stat_replication`,
	`SELECT slot_name, active, active_pid, restart_lsn, wal_status FROM pg_replication_slots`,
}

// ReplicationSnapshot describes every node's replication as PostgreSQL
// sees it, at the moment a trial failed: the answers of
// replicationQueries (read from the client namespace), the postmaster's
// process tree (the startup process's title names the segment it waits
// for, and a restore_command in flight shows as its child) and the
// timeline history files and newest segments in pg_wal. Each part that
// cannot be read says why.
func ReplicationSnapshot(ctx context.Context, c *Cluster) string {
	var b strings.Builder
	for _, node := range c.Net.Nodes {
		fmt.Fprintf(&b, "\n==== %s replication ====\n", node)
		// One psql for the node: it runs each -c in turn, an error in one
		// not stopping the next.
		args := []string{"netns", "exec", NodeNS("client"), "psql", c.NodeDSN(node), "-X", "-x", "-q"}
		for _, q := range replicationQueries {
			args = append(args, "-c", q)
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := exec.CommandContext(qctx, "ip", args...).CombinedOutput()
		cancel()
		b.Write(out)
		if err != nil {
			fmt.Fprintf(&b, "(psql: %v)\n", err)
		}
		b.WriteString(postmasterProcesses(c.Layout.PostmasterPID(node)))
		b.WriteString(walListing(filepath.Join(c.Layout.NodeDir(node), "data", "pg_wal")))
	}
	return b.String()
}

// postmasterProcesses lists the postmaster pm and every process below it
// (a restore_command in flight is the startup process's grandchild) with
// its title, which for the startup process names the segment it waits
// for.
func postmasterProcesses(pm int) string {
	if pm == 0 {
		return "processes: no postmaster running\n"
	}
	var b strings.Builder
	b.WriteString("processes:\n")
	for _, pid := range testcluster.Descendants(pm) {
		title, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // ended meanwhile
		}
		fmt.Fprintf(&b, "  %d %s\n", pid, strings.TrimSpace(strings.ReplaceAll(string(title), "\x00", " ")))
	}
	return b.String()
}

// walListing names the history files and the last few other files of a
// pg_wal directory.
func walListing(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Sprintf("pg_wal: %v\n", err)
	}
	var history, other []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if strings.HasSuffix(e.Name(), ".history") {
			history = append(history, e.Name())
		} else {
			other = append(other, e.Name())
		}
	}
	sort.Strings(other)
	if len(other) > 6 {
		other = other[len(other)-6:]
	}
	return fmt.Sprintf("pg_wal: history %v; last files %v\n", history, other)
}
