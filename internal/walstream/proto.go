package walstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/lsn"
)

// The few messages of PostgreSQL's streaming replication protocol the
// stream needs (pglogrepl is not a dependency of this module): the
// replication commands go as simple queries; inside CopyBoth, the server
// sends XLogData ('w') and keepalives ('k'), the client standby status
// updates ('r').

// system is IDENTIFY_SYSTEM's answer.
type system struct {
	ID       string
	Timeline uint32
	XLogPos  lsn.LSN
}

func identifySystem(ctx context.Context, c *pgconn.PgConn) (system, error) {
	rows, err := simpleRows(ctx, c, "IDENTIFY_SYSTEM")
	if err != nil {
		return system{}, err
	}
	if len(rows) != 1 || len(rows[0]) < 3 {
		return system{}, fmt.Errorf("IDENTIFY_SYSTEM: unexpected answer %q", rows)
	}
	tli, err := strconv.ParseUint(rows[0][1], 10, 32)
	if err != nil {
		return system{}, fmt.Errorf("IDENTIFY_SYSTEM timeline %q: %w", rows[0][1], err)
	}
	pos, err := lsn.Parse(rows[0][2])
	if err != nil {
		return system{}, fmt.Errorf("IDENTIFY_SYSTEM xlogpos: %w", err)
	}
	return system{ID: rows[0][0], Timeline: uint32(tli), XLogPos: pos}, nil
}

// segmentSize reads wal_segment_size ("16MB", "1GB").
func segmentSize(ctx context.Context, c *pgconn.PgConn) (uint64, error) {
	rows, err := simpleRows(ctx, c, "SHOW wal_segment_size")
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, fmt.Errorf("SHOW wal_segment_size: unexpected answer %q", rows)
	}
	v := rows[0][0]
	mult := uint64(1)
	switch {
	case strings.HasSuffix(v, "GB"):
		mult, v = 1<<30, strings.TrimSuffix(v, "GB")
	case strings.HasSuffix(v, "MB"):
		mult, v = 1<<20, strings.TrimSuffix(v, "MB")
	case strings.HasSuffix(v, "kB"):
		mult, v = 1<<10, strings.TrimSuffix(v, "kB")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || !lsn.ValidSegmentSize(n*mult) {
		return 0, fmt.Errorf("wal_segment_size %q: not a segment size", rows[0][0])
	}
	return n * mult, nil
}

// timelineHistory is TIMELINE_HISTORY's answer: the file name and content.
func timelineHistory(ctx context.Context, c *pgconn.PgConn, tli uint32) (string, []byte, error) {
	rows, err := simpleRows(ctx, c, fmt.Sprintf("TIMELINE_HISTORY %d", tli))
	if err != nil {
		return "", nil, err
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return "", nil, fmt.Errorf("TIMELINE_HISTORY %d: unexpected answer", tli)
	}
	return rows[0][0], []byte(rows[0][1]), nil
}

// switchPoint is where the history's last line says the current timeline
// began (0 for an empty history).
func switchPoint(history []byte) lsn.LSN {
	var last lsn.LSN
	for _, line := range strings.Split(string(history), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if p, err := lsn.Parse(f[1]); err == nil {
			last = p
		}
	}
	return last
}

// slotPosition reads a physical slot (READ_REPLICATION_SLOT, PostgreSQL
// 15): exists false when there is none; restart 0 when it holds no WAL.
func slotPosition(ctx context.Context, c *pgconn.PgConn, slot string) (exists bool, restart lsn.LSN, err error) {
	res := c.Exec(ctx, "READ_REPLICATION_SLOT "+slot)
	results, err := res.ReadAll()
	if err != nil {
		return false, 0, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", slot, err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) < 2 {
		return false, 0, fmt.Errorf("READ_REPLICATION_SLOT %s: unexpected answer", slot)
	}
	row := results[0].Rows[0]
	if row[0] == nil { // slot_type NULL: no such slot
		return false, 0, nil
	}
	if row[1] == nil {
		return true, 0, nil
	}
	p, err := lsn.Parse(string(row[1]))
	return true, p, err
}

func createSlot(ctx context.Context, c *pgconn.PgConn, slot string) error {
	_, err := c.Exec(ctx, "CREATE_REPLICATION_SLOT "+slot+" PHYSICAL RESERVE_WAL").ReadAll()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object
		return nil
	}
	return err
}

func dropSlot(ctx context.Context, c *pgconn.PgConn, slot string) error {
	_, err := c.Exec(ctx, "DROP_REPLICATION_SLOT "+slot).ReadAll()
	return err
}

// startReplication enters CopyBoth from start on timeline tli.
func startReplication(ctx context.Context, c *pgconn.PgConn, slot string, start lsn.LSN, tli uint32) error {
	q := fmt.Sprintf("START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %d", slot, start, tli)
	c.Frontend().Send(&pgproto3.Query{String: q})
	if err := c.Frontend().Flush(); err != nil {
		return fmt.Errorf("START_REPLICATION: %w", err)
	}
	for {
		msg, err := c.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("START_REPLICATION: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyBothResponse:
			return nil
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("START_REPLICATION: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return fmt.Errorf("START_REPLICATION: unexpected message %T", msg)
		}
	}
}

// pgEpoch is PostgreSQL's epoch for timestamps in the protocol.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// sendStatus sends a standby status update: written, flushed and applied
// up to the positions given (the stream applies nothing: apply = flush).
func sendStatus(c *pgconn.PgConn, write, flush lsn.LSN, now time.Time) error {
	b := make([]byte, 34)
	b[0] = 'r'
	binary.BigEndian.PutUint64(b[1:], uint64(write))
	binary.BigEndian.PutUint64(b[9:], uint64(flush))
	binary.BigEndian.PutUint64(b[17:], uint64(flush))
	binary.BigEndian.PutUint64(b[25:], uint64(now.Sub(pgEpoch).Microseconds()))
	c.Frontend().Send(&pgproto3.CopyData{Data: b})
	return c.Frontend().Flush()
}

// xlogData parses an XLogData message ('w'): where its WAL starts and the
// WAL itself (aliasing msg).
func xlogData(msg []byte) (start lsn.LSN, wal []byte, err error) {
	if len(msg) < 25 {
		return 0, nil, fmt.Errorf("XLogData of %d bytes: too short", len(msg))
	}
	return lsn.LSN(binary.BigEndian.Uint64(msg[1:9])), msg[25:], nil
}

// keepalive parses a primary keepalive ('k'): whether a reply is asked for.
func keepalive(msg []byte) (replyRequested bool, err error) {
	if len(msg) < 18 {
		return false, fmt.Errorf("keepalive of %d bytes: too short", len(msg))
	}
	return msg[17] == 1, nil
}

// simpleRows runs a replication command and returns its text rows (NULLs
// as "").
func simpleRows(ctx context.Context, c *pgconn.PgConn, cmd string) ([][]string, error) {
	results, err := c.Exec(ctx, cmd).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	var out [][]string
	for _, r := range results {
		for _, row := range r.Rows {
			vals := make([]string, len(row))
			for i, v := range row {
				vals[i] = string(v)
			}
			out = append(out, vals)
		}
	}
	return out, nil
}
