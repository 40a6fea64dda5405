package pg

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// confFile is the file the agent owns inside the data directory; the main
// postgresql.conf includes it last.
const confFile = "pgguard.conf"

// Upstream names the primary a standby streams from.
type Upstream struct {
	Name string
	Host string
	Port int
}

// ArchiveSlot is the physical slot the agent's WAL stream consumes on the
// primary (no member may be named "archive": config refuses it).
const ArchiveSlot = "pgguard_archive"

// SlotName is the physical replication slot a primary keeps for member.
func SlotName(member string) string {
	return "pgguard_" + strings.NewReplacer("-", "_", ".", "_").Replace(member)
}

// confQuote quotes a value for postgresql.conf, whose parser reads
// backslash escapes as well as doubled quotes inside a quoted string: both
// are escaped, so any value (a connection string that itself quotes a host
// holding ' or \, a path) reaches the server as it was.
func confQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// conninfo builds a libpq keyword string; values are quoted.
func conninfo(kv map[string]string) string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[k])
		parts = append(parts, fmt.Sprintf("%s='%s'", k, v))
	}
	return strings.Join(parts, " ")
}

// ReplicationConninfo is how this node connects to upstream to stream WAL.
func (i *Instance) ReplicationConninfo(u Upstream) string {
	return conninfo(i.withSSL(map[string]string{
		"host": u.Host, "port": fmt.Sprint(u.Port), "user": i.o.ReplUser,
		"application_name": i.o.Name, "passfile": i.PassFile(), "connect_timeout": "2",
		"keepalives_idle": "2", "keepalives_interval": "1", "keepalives_count": "3",
	}))
}

// SuperConninfo is how this node connects to another member as superuser
// (pg_rewind, pg_basebackup), and to its own PostgreSQL.
func (i *Instance) SuperConninfo(u Upstream) string {
	return conninfo(i.withSSL(map[string]string{
		"host": u.Host, "port": fmt.Sprint(u.Port), "user": i.o.Superuser, "dbname": i.database(),
		"application_name": i.o.Name, "passfile": i.PassFile(), "connect_timeout": "5",
	}))
}

// ReplicationSettings are what every node runs streaming replication
// with (the failover benchmark gives Patroni's clusters the same).
var ReplicationSettings = map[string]string{
	"wal_level":                    "replica",
	"hot_standby":                  "on",
	"max_wal_senders":              "16",
	"max_replication_slots":        "16",
	"wal_keep_size":                "256MB",
	"wal_log_hints":                "on",
	"hot_standby_feedback":         "on",
	"wal_receiver_status_interval": "1s",
	"wal_retrieve_retry_interval":  "250ms",
	"wal_sender_timeout":           "10s",
	"wal_receiver_timeout":         "10s",
	"log_line_prefix":              "%m [%p] ",
}

// WriteConfig writes pgguard.conf for the given role: a standby of up
// (nil: a standby with no upstream yet) or, when primary is true, a primary.
// It creates or removes standby.signal to match.
func (i *Instance) WriteConfig(primary bool, up *Upstream) error {
	settings := map[string]string{
		"listen_addresses":         i.o.ListenAddress,
		"port":                     fmt.Sprint(i.o.Port),
		"unix_socket_directories":  "",
		"recovery_target_timeline": "latest",
		"password_encryption":      "scram-sha-256",
		"cluster_name":             i.o.Name,
	}
	maps.Copy(settings, ReplicationSettings)
	if err := i.serveTLS(settings); err != nil {
		return err
	}
	if i.o.ArchiveCommand != "" {
		// "on", not "always": a standby's copy of a switched segment can
		// carry a recycled file's old bytes after the switch record, so
		// standbys pushing the same names would conflict with the
		// primary's copies. The primary's wal-push looks ahead at every
		// .ready segment, so little is left unarchived when it dies.
		settings["archive_mode"] = "on"
		settings["archive_command"] = i.o.ArchiveCommand
	}
	if i.o.RestoreCommand != "" && !i.RestoreOff() {
		settings["restore_command"] = i.o.RestoreCommand
	}
	if primary {
		i.mu.Lock()
		settings["synchronous_standby_names"] = i.syncNames
		i.mu.Unlock()
	}
	if !primary && up != nil {
		settings["primary_conninfo"] = i.ReplicationConninfo(*up)
		settings["primary_slot_name"] = SlotName(i.o.Name)
	}
	if !primary {
		i.mu.Lock()
		target := i.replayTarget
		i.mu.Unlock()
		switch {
		case target.LSN > 0 || !target.Time.IsZero():
			// Replay up to the operator's point, not past it, and wait
			// there (the apply delay would hold it further back).
			if target.LSN > 0 {
				settings["recovery_target_lsn"] = target.LSN.String()
			} else {
				settings["recovery_target_time"] = target.Time.UTC().Format("2006-01-02 15:04:05.000000+00")
			}
			settings["recovery_target_action"] = "pause"
			settings["recovery_target_inclusive"] = "off"
			settings["recovery_min_apply_delay"] = "0"
		case i.o.ApplyDelay > 0:
			settings["recovery_min_apply_delay"] = fmt.Sprintf("%dms", i.o.ApplyDelay.Milliseconds())
		}
	}
	if v := initSyncMethod(i.o.DataDir, len(i.o.Programs) > 0, kernelRelease()); v != "" {
		settings["recovery_init_sync_method"] = v
	}
	if v := slotKeepSize(i.o.DataDir); v != "" {
		settings["max_slot_wal_keep_size"] = v
	}
	for k, v := range i.o.Parameters {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by the pgguard agent; it is rewritten at every start and role change.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, confQuote(settings[k]))
	}
	if err := i.writeDataFile(confFile, b.String(), 0o600); err != nil {
		return err
	}
	// pg_hba.conf too: a data directory cloned, rewound or restored from
	// another node (or an older release) gets this node's rules.
	if err := i.WriteHBA(); err != nil {
		return err
	}
	if err := i.ensureInclude(); err != nil {
		return err
	}
	signal := filepath.Join(i.o.DataDir, "standby.signal")
	switch {
	case primary && i.Running():
		// A running standby being promoted: PostgreSQL removes
		// standby.signal itself at the end of recovery, and fails
		// (FATAL) if it has disappeared under it.
		return nil
	case primary:
		if err := os.Remove(signal); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove standby.signal: %w", err)
		}
		return nil
	}
	return i.writeDataFile("standby.signal", "", 0o600)
}

// SetRestoreOff makes the configurations written from now on leave
// restore_command out (off true) or put it back: a switchover's
// candidate, and a promotion that needs nothing from the archive, do
// without it. pg_rewind's --restore-target-wal reads it from the
// configuration, so it is on again once the promotion is done.
func (i *Instance) SetRestoreOff(off bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.restoreOff = off
}

// RestoreOff reports what SetRestoreOff last set.
func (i *Instance) RestoreOff() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.restoreOff
}

// WriteDataFile writes a small file of the agent's own into the data
// directory (atomically, owned by the database account, mode 0600).
func (i *Instance) WriteDataFile(name, content string) error {
	return i.writeDataFile(name, content, 0o600)
}

// writeDataFile writes a file in the data directory atomically, owned by
// the database account.
func (i *Instance) writeDataFile(name, content string, mode os.FileMode) error {
	path := filepath.Join(i.o.DataDir, name)
	tmp := path + ".pgguard-tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := i.o.Account.ChownTree(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// ensureInclude makes postgresql.conf include pgguard.conf, once, at the end.
func (i *Instance) ensureInclude() error {
	path := filepath.Join(i.o.DataDir, "postgresql.conf")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read postgresql.conf: %w", err)
	}
	line := "include_if_exists = '" + confFile + "'"
	if strings.Contains(string(data), line) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("update postgresql.conf: %w", err)
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "\n# Added by pgguard: settings the agent manages.\n%s\n", line)
	return err
}

// ReplayTarget is the operator's time this standby is held at (zero:
// none).
func (i *Instance) ReplayTarget() time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.replayTarget.Time
}

// SetReplayTarget sets the recovery target the next standby start writes
// (zero: none).
func (i *Instance) SetReplayTarget(t ReplayTarget) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.replayTarget = t
}

// SyncNames is the synchronous_standby_names this agent last set ("" when
// none since it started).
func (i *Instance) SyncNames() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.syncNames
}

// SetSyncNames rewrites pgguard.conf with a new synchronous_standby_names
// for this primary; the caller reloads.
func (i *Instance) SetSyncNames(v string) error {
	i.mu.Lock()
	i.syncNames = v
	i.mu.Unlock()
	return i.WriteConfig(true, nil)
}

// slotKeepSize is the default max_slot_wal_keep_size: a quarter of the
// volume that holds pg_wal, so that slots alone never fill it: a slot
// that would hold back more is invalidated by PostgreSQL, and its standby
// catches up from the archive or is rebuilt. "" when the volume cannot be
// measured (PostgreSQL's default, no limit, stays).
func slotKeepSize(dataDir string) string {
	dir := filepath.Join(dataDir, "pg_wal")
	if _, err := os.Stat(dir); err != nil {
		dir = dataDir
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks == 0 {
		return ""
	}
	quarter := int64(st.Blocks) * int64(st.Bsize) / 4 >> 20 // MB
	if quarter < 1 {
		quarter = 1
	}
	if quarter > 1024 && quarter%1024 == 0 {
		return fmt.Sprintf("%dGB", quarter>>10)
	}
	return fmt.Sprintf("%dMB", quarter)
}
