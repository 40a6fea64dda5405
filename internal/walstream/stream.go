// Package walstream archives the WAL of the local primary into the
// repository as it is written: it streams over PostgreSQL's physical
// replication protocol on a slot of its own, stores each completed
// segment as the same WAL object archive_command stores, and the
// incomplete segment as a tail object rewritten while it grows, and only
// then reports the stored position to the server, so that the slot holds
// every byte the repository does not yet have.
//
// It leaves a record of each segment it stored (the content's SHA-256) in
// archive_command's spool, so that `pgguard wal-push` confirms such a
// segment without opening the repository. It never decides when to run
// (the agent starts it on the primary holding the lease and stops it
// otherwise), never makes PostgreSQL wait for it (it is no synchronous
// standby), and never writes into pg_wal except the spool.
package walstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/walspool"
)

// Archive is what the stream needs of a repository: it stores history
// files with PutWAL, and builds each segment's object with a WALWriter as
// its bytes arrive, so that storing a completed segment is a seal and a
// write, not 16 MiB to compress while archive_command waits for it.
type Archive interface {
	PutWAL(ctx context.Context, name string, data []byte) error
	NewWALWriter() *repo.WALWriter
	RemoveWALTail(ctx context.Context, segment string) error
}

// Options configure Run.
type Options struct {
	// ConnString reaches the local PostgreSQL as a role that may
	// replicate (libpq keyword or URI form); replication=true is added.
	ConnString string
	// Slot is the physical slot the stream consumes (created if missing).
	Slot string
	// SpoolDir is archive_command's spool (pg_wal/pgguard/push): a stored
	// segment's record goes there.
	SpoolDir string
	// TailEvery is the longest time written WAL waits before its tail is
	// stored (default 500 ms).
	TailEvery time.Duration
	Log       *slog.Logger
	// Stored, when set, is called after each object is stored (for
	// metrics and tests): the segment or history file name, whether it
	// was a tail, and the position now stored.
	Stored func(name string, tail bool, upTo lsn.LSN)
	// Progress, when set, carries what one run stored to the next (the
	// agent keeps one across the stream's restarts).
	Progress *Progress
}

// Progress is the end of the whole segments the stream stored, on its
// timeline. A run starts there when the slot is behind it: a physical
// slot's restart_lsn reaches the disk only at checkpoints, so after a
// postmaster crash it points up to max_wal_size back, at segments the
// repository holds already, and streaming them again made a switchover
// right after a crash wait seconds for the archiver (the stream, which
// archive_command waits for, was re-reading them).
type Progress struct {
	mu     sync.Mutex
	tli    uint32
	stored lsn.LSN
}

func (p *Progress) set(tli uint32, stored lsn.LSN) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tli, p.stored = tli, stored
}

// resume is where a run on timeline tli may start instead of start: the
// end of what an earlier run stored on that timeline, if that is further
// and the server has flushed WAL up to it (flushed).
func (p *Progress) resume(tli uint32, start, flushed lsn.LSN) lsn.LSN {
	if p == nil {
		return start
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tli == tli && p.stored > start && p.stored <= flushed {
		return p.stored
	}
	return start
}

// ApplicationName is the stream's application_name in
// pg_stat_replication.
const ApplicationName = "pgguard_archive"

// Run streams until ctx ends (nil) or the stream fails (the error): the
// caller starts it again after a pause.
func Run(ctx context.Context, a Archive, o Options) error {
	if o.TailEvery <= 0 {
		o.TailEvery = 500 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgconn.ParseConfig(o.ConnString)
	if err != nil {
		return fmt.Errorf("replication connection settings: %w", err)
	}
	cfg.RuntimeParams["replication"] = "true"
	cfg.RuntimeParams["application_name"] = ApplicationName
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replication connection: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	s := &stream{c: c, a: a, o: o, sum: sha256.New()}
	defer s.unmark()
	defer func() {
		if s.w != nil {
			s.w.Close()
		}
	}()
	err = s.run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type stream struct {
	c       *pgconn.PgConn
	a       Archive
	o       Options
	segSize uint64
	tli     uint32

	buf      []byte          // the current segment, zero beyond pos
	w        *repo.WALWriter // the current segment's object, fed as buf fills
	sum      hash.Hash       // SHA-256 of buf up to pos, for wal-push's record
	segStart lsn.LSN         // where buf begins
	pos      lsn.LSN         // end of the WAL received
	stored   lsn.LSN         // end of the WAL stored in the repository
	// tailAt is when the first byte past stored arrived (zero: none).
	tailAt  time.Time
	hasTail bool // a tail object of the current segment exists
	marked  bool // the stream's mark names this run's first segment
}

func (s *stream) run(ctx context.Context) error {
	sys, err := identifySystem(ctx, s.c)
	if err != nil {
		return err
	}
	if s.segSize, err = segmentSize(ctx, s.c); err != nil {
		return err
	}
	s.tli = sys.Timeline
	var begin lsn.LSN
	if s.tli > 1 {
		name, content, err := timelineHistory(ctx, s.c, s.tli)
		if err != nil {
			return err
		}
		if err := s.a.PutWAL(ctx, name, content); err != nil {
			return fmt.Errorf("store %s: %w", name, err)
		}
		s.confirm(name, content)
		begin = switchPoint(content)
	}
	exists, restart, err := slotPosition(ctx, s.c, s.o.Slot)
	if err != nil {
		return err
	}
	if exists && restart == 0 {
		// The slot lost its WAL (max_slot_wal_keep_size): start afresh,
		// archive_command has the segments in between.
		s.o.Log.Warn("WAL stream: slot holds no WAL any more; recreating it", "slot", s.o.Slot)
		if err := dropSlot(ctx, s.c, s.o.Slot); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		if err := createSlot(ctx, s.c, s.o.Slot); err != nil {
			return fmt.Errorf("create slot %s: %w", s.o.Slot, err)
		}
		if _, restart, err = slotPosition(ctx, s.c, s.o.Slot); err != nil {
			return err
		}
	}
	start := max(restart, begin)
	if start == 0 {
		start = sys.XLogPos
	}
	// Whole segments only: a segment is stored from its first byte.
	start = lsn.LSN(start.Segment(s.segSize) * s.segSize)
	if from := s.o.Progress.resume(s.tli, start, sys.XLogPos); from != start {
		s.o.Log.Info("WAL stream: the repository holds the segments before the slot's position; starting after them",
			"slot", s.o.Slot, "restart_lsn", start.String(), "from", from.String())
		start = from
	}
	if err := startReplication(ctx, s.c, s.o.Slot, start, s.tli); err != nil {
		return err
	}
	s.o.Log.Info("WAL stream started", "slot", s.o.Slot, "timeline", s.tli, "from", start.String())
	s.buf = make([]byte, s.segSize)
	s.w = s.a.NewWALWriter()
	s.segStart, s.pos, s.stored = start, start, start
	return s.loop(ctx)
}

func (s *stream) loop(ctx context.Context) error {
	lastStatus := time.Time{}
	for {
		now := time.Now()
		if !s.tailAt.IsZero() && now.Sub(s.tailAt) >= s.o.TailEvery {
			if err := s.storeTail(ctx); err != nil {
				return err
			}
		}
		if now.Sub(lastStatus) >= time.Second {
			if err := sendStatus(s.c, s.pos, s.stored, now); err != nil {
				return fmt.Errorf("status update: %w", err)
			}
			lastStatus = now
			s.markAlive(now)
		}
		wait := time.Second - time.Since(lastStatus)
		if !s.tailAt.IsZero() {
			wait = min(wait, s.o.TailEvery-time.Since(s.tailAt))
		}
		rctx, cancel := context.WithTimeout(ctx, max(wait, time.Millisecond))
		msg, err := s.c.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case 'w':
				start, wal, err := xlogData(m.Data)
				if err != nil {
					return err
				}
				if err := s.receive(ctx, start, wal); err != nil {
					return err
				}
			case 'k':
				reply, err := keepalive(m.Data)
				if err != nil {
					return err
				}
				if reply {
					// A shutdown waits for this answer: store what is
					// pending now rather than at the next tick.
					if s.pos > s.stored {
						if err := s.storeTail(ctx); err != nil {
							return err
						}
					}
					if err := sendStatus(s.c, s.pos, s.stored, time.Now()); err != nil {
						return fmt.Errorf("status update: %w", err)
					}
					lastStatus = time.Now()
				}
			}
		case *pgproto3.CopyDone:
			// The timeline ended (this server was promoted or stops).
			if s.pos > s.stored {
				if err := s.storeTail(ctx); err != nil {
					return err
				}
			}
			return errors.New("the server ended the stream")
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("stream: %w", pgconn.ErrorResponseToPgError(m))
		}
	}
}

// receive places WAL that starts at start into the segment buffer,
// storing each segment it completes.
func (s *stream) receive(ctx context.Context, start lsn.LSN, wal []byte) error {
	if start != s.pos {
		return fmt.Errorf("WAL at %s, expected %s: the stream skipped or repeated WAL", start, s.pos)
	}
	for len(wal) > 0 {
		if s.tailAt.IsZero() {
			s.tailAt = time.Now()
		}
		off := uint64(s.pos - s.segStart)
		n := copy(s.buf[off:], wal)
		if _, err := s.w.Write(wal[:n]); err != nil {
			return fmt.Errorf("WAL stream: %w", err)
		}
		s.sum.Write(wal[:n])
		wal = wal[n:]
		s.pos += lsn.LSN(n)
		if off+uint64(n) == s.segSize {
			if err := s.storeSegment(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *stream) segmentName() string {
	return lsn.SegmentName(s.tli, s.segStart.Segment(s.segSize), s.segSize)
}

func (s *stream) storeSegment(ctx context.Context) error {
	name := s.segmentName()
	if err := s.w.PutWAL(ctx, name, s.buf); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	s.confirmSum(name, s.sum.Sum(nil))
	s.w.Close()
	s.w = s.a.NewWALWriter()
	s.sum.Reset()
	if s.hasTail {
		if err := s.a.RemoveWALTail(ctx, name); err != nil {
			s.o.Log.Warn("WAL stream: remove a tail", "segment", name, "err", err)
		}
		s.hasTail = false
	}
	s.stored = s.pos
	s.tailAt = time.Time{}
	s.segStart += lsn.LSN(s.segSize)
	s.o.Progress.set(s.tli, s.segStart)
	clear(s.buf)
	if s.o.Stored != nil {
		s.o.Stored(name, false, s.stored)
	}
	return nil
}

func (s *stream) storeTail(ctx context.Context) error {
	name := s.segmentName()
	if s.pos == s.segStart {
		s.tailAt = time.Time{}
		return nil
	}
	if err := s.w.PutWALTail(ctx, name, int64(s.segSize), s.buf[:s.pos-s.segStart]); err != nil {
		return fmt.Errorf("store the tail of %s: %w", name, err)
	}
	s.hasTail = true
	s.stored = s.pos
	s.tailAt = time.Time{}
	if err := sendStatus(s.c, s.pos, s.stored, time.Now()); err != nil {
		return fmt.Errorf("status update: %w", err)
	}
	if s.o.Stored != nil {
		s.o.Stored(name, true, s.stored)
	}
	return nil
}

// markAlive tells wal-push the stream runs, so that it waits for the
// stream's record of a segment rather than pushing it too.
//
// The mark holds the name of the first segment this run of the stream
// stores: wal-push waits only for the files the stream will store (its
// timeline's history file and segments from there on), never for an
// older timeline's leftovers, which PostgreSQL archives during a
// switchover's clean shutdown too.
func (s *stream) markAlive(now time.Time) {
	if s.o.SpoolDir == "" {
		return
	}
	p := filepath.Join(s.o.SpoolDir, walspool.StreamMark)
	if s.marked && os.Chtimes(p, now, now) == nil {
		return
	}
	if os.MkdirAll(s.o.SpoolDir, 0o700) != nil {
		return
	}
	first := lsn.SegmentName(s.tli, s.segStart.Segment(s.segSize), s.segSize)
	tmp := p + ".tmp"
	if os.WriteFile(tmp, []byte(first+"\n"), 0o600) == nil && os.Rename(tmp, p) == nil {
		s.marked = true
	}
}

// unmark tells wal-push the stream has ended, so that it pushes at once:
// a switchover's clean shutdown waits for the archiver, which would
// otherwise wait for a stream that has stopped.
func (s *stream) unmark() {
	if s.o.SpoolDir != "" {
		_ = os.Remove(filepath.Join(s.o.SpoolDir, walspool.StreamMark))
	}
}

// confirm leaves the record wal-push checks before it opens the
// repository: the SHA-256 of what the stream stored under name. A record
// that cannot be written only costs archive_command a repository open.
func (s *stream) confirm(name string, data []byte) {
	sum := sha256.Sum256(data)
	s.confirmSum(name, sum[:])
}

// confirmSum is confirm with the content's SHA-256.
func (s *stream) confirmSum(name string, sum []byte) {
	if s.o.SpoolDir == "" {
		return
	}
	if err := os.MkdirAll(s.o.SpoolDir, 0o700); err != nil {
		return
	}
	tmp := filepath.Join(s.o.SpoolDir, name+".ok.stream")
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(sum)+"\n"), 0o600); err != nil {
		return
	}
	_ = os.Rename(tmp, filepath.Join(s.o.SpoolDir, name+".ok"))
}
