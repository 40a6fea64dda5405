package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

// Connect opens a superuser connection to the local instance.
func (i *Instance) Connect(ctx context.Context) (*pgx.Conn, error) {
	return ConnectTo(ctx, i.LocalConninfo())
}

// LocalConninfo is how the agent reaches its own PostgreSQL as superuser.
func (i *Instance) LocalConninfo() string {
	return i.SuperConninfo(Upstream{Host: localHost(i.o.ListenAddress), Port: i.o.Port})
}

// ConnectTo opens a connection from a libpq-style conninfo string.
func ConnectTo(ctx context.Context, conninfo string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("parse connection settings: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "pgguard"
	return pgx.ConnectConfig(ctx, cfg)
}

func localHost(listen string) string {
	switch listen {
	case "", "*", "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return listen
}

// Status is one SQL probe of the local instance.
type Status struct {
	InRecovery  bool
	Timeline    int
	WalLSN      lsn.LSN
	ReceivedLSN lsn.LSN
	ReplayedLSN lsn.LSN
	Streaming   bool
	// CheckpointTimeline and ReceiveTimeline are the two timelines the
	// probe sees on a standby: the last restartpoint's and the one the
	// WAL receiver streams (0 without a receiver). Timeline is the larger.
	CheckpointTimeline, ReceiveTimeline int
	SenderHost                          string
	SenderPort                          int
	SystemID                            string
	SyncNames                           string
	// ReplayPaused: a standby's replay is paused (by an operator, or at
	// its recovery target).
	ReplayPaused bool
	// Streamers are the application names of the standbys streaming from
	// this primary right now (pg_stat_replication).
	Streamers []string
	// Replication is what the primary sees of each connected standby.
	Replication map[string]ha.Replica
}

// Probe reads the instance's role and WAL positions in one round trip.
func Probe(ctx context.Context, conn *pgx.Conn) (Status, error) {
	var st Status
	var wal, recv, replay, sysid, senderHost *string
	var status *string
	var senderPort *int
	var tli, recvTLI *int
	err := conn.QueryRow(ctx, `
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       (SELECT timeline_id FROM pg_control_checkpoint()),
       (SELECT system_identifier::text FROM pg_control_system()),
       r.status, r.received_tli, r.sender_host, r.sender_port,
       current_setting('synchronous_standby_names'),
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END
FROM (SELECT 1) AS one
LEFT JOIN pg_stat_wal_receiver r ON true`).Scan(
		&st.InRecovery, &wal, &recv, &replay, &tli, &sysid, &status, &recvTLI, &senderHost, &senderPort, &st.SyncNames, &st.ReplayPaused)
	if err != nil {
		return Status{}, fmt.Errorf("probe: %w", err)
	}
	parse := func(s *string) lsn.LSN {
		if s == nil {
			return 0
		}
		l, _ := lsn.Parse(*s)
		return l
	}
	st.WalLSN, st.ReceivedLSN, st.ReplayedLSN = parse(wal), parse(recv), parse(replay)
	if tli != nil {
		st.Timeline = *tli
	}
	if !st.InRecovery {
		// The checkpoint's timeline lags right after promotion; the
		// current WAL file name carries the true one.
		var walfile string
		if err := conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_current_wal_lsn())`).Scan(&walfile); err == nil && len(walfile) >= 8 {
			if v, err := strconv.ParseInt(walfile[:8], 16, 32); err == nil {
				st.Timeline = int(v)
			}
		}
	}
	if !st.InRecovery {
		rows, err := conn.Query(ctx, `SELECT application_name, state, sync_state,
       sent_lsn::text, flush_lsn::text, replay_lsn::text,
       COALESCE(EXTRACT(epoch FROM replay_lag), 0)::float8
FROM pg_stat_replication WHERE application_name <> 'pgguard_archive'`)
		if err != nil {
			return Status{}, fmt.Errorf("probe replication: %w", err)
		}
		st.Replication = map[string]ha.Replica{}
		for rows.Next() {
			var name, state, syncState string
			var sent, flush, replay *string
			var lag float64
			if rows.Scan(&name, &state, &syncState, &sent, &flush, &replay, &lag) != nil {
				continue
			}
			st.Replication[name] = ha.Replica{State: state, SyncState: syncState, SentLSN: parse(sent),
				FlushLSN: parse(flush), ReplayLSN: parse(replay), ReplayLagSeconds: lag}
			if state == "streaming" {
				st.Streamers = append(st.Streamers, name)
			}
		}
		rows.Close()
	}
	st.CheckpointTimeline = st.Timeline
	if recvTLI != nil {
		st.ReceiveTimeline = *recvTLI
	}
	if recvTLI != nil && *recvTLI > st.Timeline {
		st.Timeline = *recvTLI
	}
	if sysid != nil {
		st.SystemID = *sysid
	}
	st.Streaming = status != nil && *status == "streaming"
	if senderHost != nil {
		st.SenderHost = *senderHost
	}
	if senderPort != nil {
		st.SenderPort = *senderPort
	}
	return st, nil
}

// Promote ends recovery and waits for the instance to accept writes. It
// asks pg_promote not to wait (its wait polls every 100 ms) and polls
// every 5 ms itself: a switchover's outage includes this wait.
func Promote(ctx context.Context, conn *pgx.Conn) error {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_promote(false)`).Scan(&ok); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !ok {
		return fmt.Errorf("promote: pg_promote could not signal the startup process")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var inRecovery bool
		if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil {
			return fmt.Errorf("promote: %w", err)
		}
		if !inRecovery {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("promote: still in recovery 60s after pg_promote")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond): // polling the end of recovery
		}
	}
}

// Checkpoint runs CHECKPOINT: an immediate checkpoint, so that a clean
// shutdown that follows has little left to write.
func Checkpoint(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `CHECKPOINT`)
	return err
}

// Reload asks the postmaster to re-read its configuration.
func Reload(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `SELECT pg_reload_conf()`)
	return err
}

// EnsureSlots makes the physical slots on a primary match members exactly:
// one per other member, and no other (inactive) pgguard slot. It returns
// the slots it dropped.
func EnsureSlots(ctx context.Context, conn *pgx.Conn, members []string) (dropped []string, err error) {
	want := map[string]bool{}
	for _, m := range members {
		want[SlotName(m)] = true
	}
	rows, err := conn.Query(ctx, `SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'`)
	if err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	have := map[string]bool{}
	var drop []string
	for rows.Next() {
		var name string
		var active bool
		if err := rows.Scan(&name, &active); err != nil {
			rows.Close()
			return nil, err
		}
		have[name] = true
		if strings.HasPrefix(name, "pgguard_") && !want[name] && !active {
			drop = append(drop, name)
		}
	}
	rows.Close()
	for _, name := range drop {
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, name); err != nil {
			return dropped, fmt.Errorf("drop stale slot %s: %w", name, err)
		}
		dropped = append(dropped, name)
	}
	for name := range want {
		if !have[name] {
			if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, name); err != nil {
				return dropped, fmt.Errorf("create slot %s: %w", name, err)
			}
		}
	}
	return dropped, nil
}

// DropAllSlots removes every inactive pgguard slot: a standby must not keep
// WAL for others (its slots date from when it was a primary).
func DropAllSlots(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name LIKE 'pgguard\_%' AND NOT active`)
	return err
}

// CreateReplicationRole creates the streaming role (idempotent). The
// password travels as a query parameter-free literal inside the server
// only: it is never logged by the agent.
func CreateReplicationRole(ctx context.Context, conn *pgx.Conn, user, password string) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, user).Scan(&exists); err != nil {
		return err
	}
	ident := pgx.Identifier{user}.Sanitize()
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	q := verb + " ROLE " + ident + " WITH REPLICATION LOGIN"
	if password != "" {
		verifier, err := ScramVerifier(password)
		if err != nil {
			return err
		}
		q += " PASSWORD " + quoteLiteral(verifier)
	}
	if _, err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("%s replication role %s: %w", strings.ToLower(verb), user, redact(err, password))
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// redact removes a secret from an error message.
func redact(err error, secret string) error {
	if secret == "" || err == nil || !strings.Contains(err.Error(), secret) {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}

// ReplayTimeline asks the local standby, over a replication connection,
// on which timeline its startup process replays: IDENTIFY_SYSTEM on a
// server in recovery answers with the replay timeline (walsender.c,
// GetStandbyFlushRecPtr). No SQL function shows it, and neither the
// restartpoint's timeline nor the WAL receiver's is it: a standby whose
// receiver streams a new timeline that is not a child of the one it
// replays ("new timeline N is not a child of database system timeline M")
// reports the new timeline as received, "streaming", and never replays it.
func (i *Instance) ReplayTimeline(ctx context.Context) (int, error) {
	return ReplayTimelineAt(ctx, i.SuperConninfo(Upstream{Host: localHost(i.o.ListenAddress), Port: i.o.Port}))
}

// ReplayTimelineAt is ReplayTimeline for the server conninfo names (its
// user needs the REPLICATION privilege).
func ReplayTimelineAt(ctx context.Context, conninfo string) (int, error) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return 0, fmt.Errorf("replay timeline: parse connection settings: %w", err)
	}
	cfg.RuntimeParams["replication"] = "true"
	cfg.RuntimeParams["application_name"] = "pgguard"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("replay timeline: connect for replication: %w", err)
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("replay timeline: IDENTIFY_SYSTEM: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 2 {
		return 0, fmt.Errorf("replay timeline: IDENTIFY_SYSTEM returned no row")
	}
	tli, err := strconv.Atoi(string(res[0].Rows[0][1]))
	if err != nil {
		return 0, fmt.Errorf("replay timeline: IDENTIFY_SYSTEM timeline %q: %w", res[0].Rows[0][1], err)
	}
	return tli, nil
}

// HistoryTimelines lists the timelines with a history file in pg_wal.
func (i *Instance) HistoryTimelines() ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(i.o.DataDir, "pg_wal"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		name := e.Name()
		if len(name) != len("00000002.history") || !strings.HasSuffix(name, ".history") {
			continue
		}
		if v, err := strconv.ParseInt(name[:8], 16, 32); err == nil {
			out = append(out, int(v))
		}
	}
	return out, nil
}

// RemoveHistoryAbove deletes the history files of timelines above tli
// from pg_wal, so that a standby's recovery, which takes the newest
// timeline it finds a history file for, targets tli (the leader's) when it
// starts. Only timelines above tli go: PostgreSQL stops looking at the
// first missing one, so a gap below would hide tli itself.
func (i *Instance) RemoveHistoryAbove(tli int) ([]int, error) {
	have, err := i.HistoryTimelines()
	if err != nil {
		return nil, err
	}
	var removed []int
	for _, t := range have {
		if t <= tli {
			continue
		}
		if err := os.Remove(filepath.Join(i.o.DataDir, "pg_wal", fmt.Sprintf("%08X.history", t))); err != nil && !os.IsNotExist(err) {
			return removed, err
		}
		removed = append(removed, t)
	}
	return removed, nil
}

// TimelineHistory reads the history of timeline tli from the data
// directory (pg_wal/0000000N.history). Timeline 1 has none.
func (i *Instance) TimelineHistory(tli int) ([]ha.TimelineSwitch, error) {
	if tli <= 1 {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(i.o.DataDir, "pg_wal", fmt.Sprintf("%08X.history", tli)))
	if err != nil {
		return nil, err
	}
	return ParseHistory(string(data))
}

// HighestHistory returns the highest timeline with a history file in
// pg_wal (0 when there is none).
func (i *Instance) HighestHistory() int {
	names, _ := filepath.Glob(filepath.Join(i.o.DataDir, "pg_wal", "*.history"))
	best := 0
	for _, n := range names {
		if v, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(n), ".history"), 16, 32); err == nil && int(v) > best {
			best = int(v)
		}
	}
	return best
}

// SkipTimelines makes PostgreSQL's next promotion choose a timeline above
// upTo: it picks one past the newest history file it finds, so a history
// file is placed for every timeline from the current one to upTo that is
// missing, each holding the current timeline's history and the
// placeholder mark. Call it on a running server right before promoting
// it. Once it is promoted, the placeholders must stay: a standby's WAL
// receiver fetches from its primary the history file of every timeline
// between its own and the primary's, skipped ones included, and stops at
// the first the primary lacks. A placeholder above every real history
// file is another matter: the promotion it was for did not happen, and a
// server started in recovery with recovery_target_timeline = 'latest'
// would take it for its target and never become consistent (chaos
// finding 20). Start removes those (RemoveTimelinePlaceholders).
func (i *Instance) SkipTimelines(current, upTo int) error {
	content := ""
	if current > 1 {
		data, err := os.ReadFile(filepath.Join(i.o.DataDir, "pg_wal", fmt.Sprintf("%08X.history", current)))
		if err == nil && !IsTimelinePlaceholder(data) {
			content = string(data)
		}
	}
	for tli := current + 1; tli <= upTo; tli++ {
		name := fmt.Sprintf("pg_wal/%08X.history", tli)
		if _, err := os.Stat(filepath.Join(i.o.DataDir, name)); err == nil {
			continue
		}
		if err := i.writeDataFile(name, content+placeholderMark, 0o600); err != nil {
			return fmt.Errorf("reserve timeline %d: %w", tli, err)
		}
	}
	return nil
}

// placeholderMark ends every history file SkipTimelines places. PostgreSQL
// reads a line starting with # as a comment.
const placeholderMark = "# pgguard: placeholder that reserves this timeline for a promotion; not a timeline's history\n"

// IsTimelinePlaceholder reports whether a history file's content is a
// placeholder of SkipTimelines.
func IsTimelinePlaceholder(data []byte) bool {
	return bytes.HasSuffix(data, []byte(placeholderMark))
}

// RemoveTimelinePlaceholders removes the placeholders of SkipTimelines
// that are above every real history file in pg_wal (those of a promotion
// that did not happen), with their archive status files, and returns
// their names. Placeholders below a real history file stay: they are the
// skipped timelines of this server's promotion or of its primary's.
func (i *Instance) RemoveTimelinePlaceholders() ([]string, error) {
	tlis, err := i.HistoryTimelines()
	if err != nil {
		return nil, err
	}
	wal := filepath.Join(i.o.DataDir, "pg_wal")
	newest, placeholders := 0, []int{}
	for _, tli := range tlis {
		data, err := os.ReadFile(filepath.Join(wal, fmt.Sprintf("%08X.history", tli)))
		switch {
		case err != nil:
			return nil, err
		case IsTimelinePlaceholder(data):
			placeholders = append(placeholders, tli)
		default:
			newest = max(newest, tli)
		}
	}
	var removed []string
	var errs []error
	for _, tli := range placeholders {
		if tli < newest {
			continue
		}
		name := fmt.Sprintf("%08X.history", tli)
		if err := os.Remove(filepath.Join(wal, name)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
			continue
		}
		for _, st := range []string{".ready", ".done"} {
			_ = os.Remove(filepath.Join(wal, "archive_status", name+st))
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// ParseHistory parses a timeline history file.
func ParseHistory(s string) ([]ha.TimelineSwitch, error) {
	var out []ha.TimelineSwitch
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %q: want 'tli lsn reason'", line)
		}
		tli, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %q: %w", line, err)
		}
		at, err := lsn.Parse(f[1])
		if err != nil {
			return nil, err
		}
		out = append(out, ha.TimelineSwitch{TLI: tli, Switch: at})
	}
	return out, nil
}
