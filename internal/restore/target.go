package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pgtime"
	"github.com/pgguard/pgguard/internal/repo"
)

// Target says where recovery stops. Exactly one of Time, LSN, XID, Name and
// Immediate is set.
type Target struct {
	Time      string // "2026-11-23 10:00:00+00" or RFC 3339; a zone is required
	LSN       string // "0/3000060"
	XID       string // transaction id, decimal
	Name      string // a restore point made with pg_create_restore_point
	Immediate bool   // stop as soon as the backup is consistent (its end)
	// Standby sets no target: the restored directory becomes a standby
	// (standby.signal) that replays the archive and then, once its agent
	// names a primary, streams from it. It excludes every other target.
	Standby bool
	// Latest sets no target either, but recovers (recovery.signal) to
	// the end of the archive — the WAL stream's tail of the newest
	// segment included — and opens: the restore after losing the whole
	// cluster. It excludes every other target.
	Latest bool
	// Inclusive stops just after (true) or just before (false) the target
	// transaction; it applies to Time, LSN and XID. The zero value is
	// exclusive; the command line defaults to inclusive, like PostgreSQL.
	Inclusive bool
	// Action once the target is reached: promote (default), pause or
	// shutdown.
	Action string
}

// parsedTarget is a validated Target.
type parsedTarget struct {
	Target
	kind string // "time", "lsn", "xid", "name", "immediate", "standby", "latest"
	time time.Time
	lsn  lsn.LSN
}

// ParseTime parses a recovery target time (pgtime.Parse).
func ParseTime(s string) (time.Time, error) {
	t, err := pgtime.Parse(s)
	if err != nil {
		return t, fmt.Errorf("target %w", err)
	}
	return t, nil
}

// parse validates t: exactly one target kind, each value well formed.
func (t Target) parse() (parsedTarget, error) {
	p := parsedTarget{Target: t}
	var kinds []string
	if t.Time != "" {
		kinds = append(kinds, "time")
	}
	if t.LSN != "" {
		kinds = append(kinds, "lsn")
	}
	if t.XID != "" {
		kinds = append(kinds, "xid")
	}
	if t.Name != "" {
		kinds = append(kinds, "name")
	}
	if t.Immediate {
		kinds = append(kinds, "immediate")
	}
	if t.Standby {
		kinds = append(kinds, "standby")
	}
	if t.Latest {
		kinds = append(kinds, "latest")
	}
	switch len(kinds) {
	case 0:
		return p, errors.New("no recovery target: give one of --time, --lsn, --xid, --name, --immediate, --latest or --standby")
	case 1:
		p.kind = kinds[0]
	default:
		return p, fmt.Errorf("several recovery targets given (%s): give exactly one", strings.Join(kinds, ", "))
	}
	var err error
	switch p.kind {
	case "time":
		p.time, err = ParseTime(t.Time)
	case "lsn":
		if p.lsn, err = lsn.Parse(t.LSN); err != nil {
			err = fmt.Errorf("target %w", err)
		}
	case "xid":
		if _, perr := strconv.ParseUint(strings.TrimSpace(t.XID), 10, 64); perr != nil {
			err = fmt.Errorf("target xid %q: want a decimal transaction id", t.XID)
		}
	case "name":
		if len(t.Name) > 63 || strings.ContainsAny(t.Name, "\n\r\x00") {
			err = fmt.Errorf("target name %q: a restore point name is one line of at most 63 bytes", t.Name)
		}
	}
	if err != nil {
		return p, err
	}
	switch p.Action {
	case "":
		p.Action = "promote"
	case "promote", "pause", "shutdown":
	default:
		return p, fmt.Errorf("target action %q: want promote, pause or shutdown", t.Action)
	}
	return p, nil
}

// chooseBackup picks the backup to restore among hdrs (any order): the one
// named id, or, when id is "", the newest physical backup that ends before a
// time or LSN target (the newest of all for other targets). A named backup
// that ends after the target is refused with the backup to use instead.
func chooseBackup(hdrs []repo.Header, id string, t parsedTarget) (repo.Header, error) {
	var phys []repo.Header
	for _, h := range hdrs {
		if h.Kind != repo.KindLogical {
			phys = append(phys, h)
		}
	}
	if len(phys) == 0 {
		return repo.Header{}, errors.New("the repository holds no physical backup: take one with pgguard backup full")
	}
	// endsBefore reports whether recovery from h can stop at the target:
	// PostgreSQL refuses a target before the backup's consistent point.
	endsBefore := func(h repo.Header) bool {
		switch t.kind {
		case "time":
			return !h.StopTime.After(t.time)
		case "lsn":
			return h.StopLSN <= t.lsn
		}
		return true
	}
	var best *repo.Header
	for i := range phys {
		h := &phys[i]
		if endsBefore(*h) && (best == nil || h.StopLSN > best.StopLSN || h.StopLSN == best.StopLSN && h.ID > best.ID) {
			best = h
		}
	}
	what := ""
	switch t.kind {
	case "time":
		what = "target time " + t.time.UTC().Format(msgTime)
	case "lsn":
		what = "target LSN " + t.lsn.String()
	}
	if id == "" {
		if best == nil {
			oldest := phys[0]
			for _, h := range phys {
				if h.StopLSN < oldest.StopLSN {
					oldest = h
				}
			}
			return repo.Header{}, fmt.Errorf("%s is before every backup ends (the oldest, %s, ends at %s / %s): no backup can recover to it",
				what, oldest.ID, oldest.StopTime.UTC().Format(msgTime), oldest.StopLSN)
		}
		return *best, nil
	}
	for _, h := range hdrs {
		if h.ID != id {
			continue
		}
		if h.Kind == repo.KindLogical {
			return repo.Header{}, fmt.Errorf("backup %s is a logical backup: a physical restore needs a full or incremental backup", id)
		}
		if endsBefore(h) {
			return h, nil
		}
		hint := "no backup ends before it"
		if best != nil {
			hint = fmt.Sprintf("use --backup %s (ends %s), or leave --backup out to pick it", best.ID, best.StopTime.UTC().Format(msgTime))
		}
		return repo.Header{}, fmt.Errorf("%s is before backup %s ends (%s / %s), and recovery cannot stop before a backup is consistent: %s",
			what, id, h.StopTime.UTC().Format(msgTime), h.StopLSN, hint)
	}
	return repo.Header{}, fmt.Errorf("backup %s is not in the repository: list them with pgguard backups", id)
}

// msgTime shows times in messages to the millisecond: backups and targets
// are often seconds apart.
const msgTime = "2006-01-02 15:04:05.000Z07:00"

// recoveryMarker starts the block of settings restore appends.
const recoveryMarker = "# recovery settings written by pgguard restore"

// recoverySettings are the keys restore owns in postgresql.auto.conf: any
// earlier line setting one of them (from the backed-up file or an earlier
// restore) is dropped, since two recovery targets make PostgreSQL refuse to
// start.
var recoverySettings = []string{
	"restore_command", "recovery_target", "recovery_target_time", "recovery_target_lsn",
	"recovery_target_xid", "recovery_target_name", "recovery_target_inclusive",
	"recovery_target_action", "recovery_target_timeline",
}

// recoveryConf returns existing (the content of postgresql.auto.conf) with
// the recovery settings for t replaced. restoreCommand is written as is.
// archiveOff also turns archiving off (replacing any archive_mode line).
func recoveryConf(existing string, t parsedTarget, restoreCommand, backupID string, archiveOff bool) string {
	var b strings.Builder
	b.WriteString(withoutRecovery(existing, archiveOff))
	fmt.Fprintf(&b, "%s from backup %s\n", recoveryMarker, backupID)
	fmt.Fprintf(&b, "restore_command = %s\n", quote(restoreCommand))
	if t.kind == "standby" || t.kind == "latest" {
		// No target: replay everything, follow the newest timeline.
		b.WriteString("recovery_target_timeline = 'latest'\n")
		if t.kind == "latest" && archiveOff {
			b.WriteString("archive_mode = 'off'\n")
		}
		return b.String()
	}
	inclusive := true
	switch t.kind {
	case "time":
		fmt.Fprintf(&b, "recovery_target_time = %s\n", quote(t.time.UTC().Format("2006-01-02 15:04:05.999999+00")))
	case "lsn":
		fmt.Fprintf(&b, "recovery_target_lsn = %s\n", quote(t.lsn.String()))
	case "xid":
		fmt.Fprintf(&b, "recovery_target_xid = %s\n", quote(strings.TrimSpace(t.XID)))
	case "name":
		fmt.Fprintf(&b, "recovery_target_name = %s\n", quote(t.Name))
		inclusive = false
	case "immediate":
		b.WriteString("recovery_target = 'immediate'\n")
		inclusive = false
	}
	if inclusive {
		fmt.Fprintf(&b, "recovery_target_inclusive = %t\n", t.Inclusive)
	}
	fmt.Fprintf(&b, "recovery_target_action = %s\n", quote(t.Action))
	// The end of the backup is on the backup's own timeline; any other
	// target follows the newest timeline in the archive, as PostgreSQL does
	// by default.
	if t.kind == "immediate" {
		b.WriteString("recovery_target_timeline = 'current'\n")
	} else {
		b.WriteString("recovery_target_timeline = 'latest'\n")
	}
	if archiveOff {
		// A copy must not archive its new timeline into the original's
		// archive, where later restores following 'latest' would take it.
		b.WriteString("archive_mode = 'off'\n")
	}
	return b.String()
}

// quote returns s as a postgresql.conf string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// withoutRecovery returns the content of postgresql.auto.conf without the
// settings a restore owns (and archive_mode when archiveOff).
func withoutRecovery(existing string, archiveOff bool) string {
	var keep []string
	for _, line := range strings.Split(existing, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == recoveryMarker || strings.HasPrefix(trimmed, recoveryMarker+" ") {
			continue
		}
		key, _, _ := strings.Cut(trimmed, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		owned := archiveOff && key == "archive_mode"
		for _, s := range recoverySettings {
			if key == s {
				owned = true
			}
		}
		if !owned {
			keep = append(keep, line)
		}
	}
	out := strings.TrimRight(strings.Join(keep, "\n"), "\n")
	if out != "" {
		out += "\n"
	}
	return out
}

// ClearRecoverySettings removes the recovery settings a restore wrote into
// dir's postgresql.auto.conf, once recovery has ended: a recovery target
// left there would stop this server's recovery early the next time it runs
// as a standby.
func ClearRecoverySettings(dir string) error {
	auto := filepath.Join(dir, "postgresql.auto.conf")
	old, err := os.ReadFile(auto)
	if err != nil {
		return fmt.Errorf("read postgresql.auto.conf: %w", err)
	}
	return os.WriteFile(auto, []byte(withoutRecovery(string(old), false)), 0o600)
}
