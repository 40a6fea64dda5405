package storage

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// RateWindow applies BytesPerSec between two times of day, [Start, End), in
// the location of the clock's time. End before Start wraps past midnight
// (22:00–06:00). Start == End covers the whole day.
type RateWindow struct {
	Start, End  TimeOfDay
	BytesPerSec int64 // <= 0: unlimited
}

// TimeOfDay is a duration since local midnight.
type TimeOfDay time.Duration

// HourMinute returns the TimeOfDay h:m.
func HourMinute(h, m int) TimeOfDay {
	return TimeOfDay(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func (t TimeOfDay) String() string {
	d := time.Duration(t)
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// RateSchedule is a transfer limit that may depend on the time of day
// (BK-10): the first window containing the time wins, else Default.
type RateSchedule struct {
	Default int64 // bytes per second; <= 0: unlimited
	Windows []RateWindow
}

// RateAt returns the limit in bytes per second at t (<= 0: unlimited). It is
// a pure function of the schedule and t's wall clock in t's location.
func (s RateSchedule) RateAt(t time.Time) int64 {
	h, m, sec := t.Clock()
	now := TimeOfDay(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec)*time.Second + time.Duration(t.Nanosecond()))
	for _, w := range s.Windows {
		if w.contains(now) {
			return w.BytesPerSec
		}
	}
	return s.Default
}

func (w RateWindow) contains(t TimeOfDay) bool {
	switch {
	case w.Start == w.End:
		return true
	case w.Start < w.End:
		return t >= w.Start && t < w.End
	default: // wraps past midnight
		return t >= w.Start || t < w.End
	}
}

// Limiter is a token bucket shared by all transfers in one direction. Its
// rate follows a RateSchedule; a nil *Limiter does not limit.
type Limiter struct {
	schedule RateSchedule
	clock    Clock

	mu     sync.Mutex
	tokens float64 // may go negative: debt paid by waiting
	last   time.Time
}

// NewLimiter returns a limiter following schedule on clock (zero: real time).
func NewLimiter(schedule RateSchedule, clock Clock) *Limiter {
	return &Limiter{schedule: schedule, clock: clock}
}

// NewFixedLimiter limits to bytesPerSec at all times.
func NewFixedLimiter(bytesPerSec int64) *Limiter {
	return NewLimiter(RateSchedule{Default: bytesPerSec}, Clock{})
}

// Wait accounts for n bytes just transferred and blocks until the rate
// allows the next transfer. The bucket holds one second's worth of tokens,
// so a short burst after an idle period passes at once.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	wait := l.reserve(n)
	if wait <= 0 {
		return nil
	}
	return l.clock.sleep(ctx, wait)
}

func (l *Limiter) reserve(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.now()
	rate := l.schedule.RateAt(now)
	if rate <= 0 {
		l.tokens, l.last = 0, now
		return 0
	}
	if !l.last.IsZero() {
		if elapsed := now.Sub(l.last); elapsed > 0 {
			l.tokens += elapsed.Seconds() * float64(rate)
		}
	} else {
		l.tokens = float64(rate)
	}
	l.tokens = min(l.tokens, float64(rate))
	l.last = now
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / float64(rate) * float64(time.Second))
}

// rateChunk bounds one read between two Waits so that a large read cannot
// overshoot a low rate by much.
const rateChunk = 32 << 10

type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *Limiter
}

func (x *limitedReader) Read(p []byte) (int, error) {
	if len(p) > rateChunk {
		p = p[:rateChunk]
	}
	n, err := x.r.Read(p)
	if werr := x.l.Wait(x.ctx, n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}

// limitedReadSeeker keeps the input seekable so that WithRetry, wrapped
// around the rate limiter, can rewind it instead of buffering it.
type limitedReadSeeker struct {
	limitedReader
	s io.Seeker
}

func (x *limitedReadSeeker) Seek(offset int64, whence int) (int64, error) {
	return x.s.Seek(offset, whence)
}

// Reader returns r limited by l (r itself when l is nil), for transfers that
// do not go through a Backend, such as reading data files during a backup.
func (l *Limiter) Reader(ctx context.Context, r io.Reader) io.Reader {
	if l == nil {
		return r
	}
	return &limitedReader{ctx: ctx, r: r, l: l}
}

type limitedReadCloser struct {
	limitedReader
	c io.Closer
}

func (x *limitedReadCloser) Close() error { return x.c.Close() }

// WithRateLimit wraps b so that Save is limited by up and the readers of
// Load by down. A nil limiter leaves that direction unlimited. Put it inside
// WithRetry: WithRetry(WithRateLimit(b, up, down), policy).
func WithRateLimit(b Backend, up, down *Limiter) Backend {
	return &rateBackend{Backend: b, up: up, down: down}
}

type rateBackend struct {
	Backend
	up, down *Limiter
}

func (r *rateBackend) Save(ctx context.Context, name string, in io.Reader, size int64) error {
	if r.up == nil {
		return r.Backend.Save(ctx, name, in, size)
	}
	limited := limitedReader{ctx: ctx, r: in, l: r.up}
	if s, ok := in.(io.Seeker); ok {
		return r.Backend.Save(ctx, name, &limitedReadSeeker{limitedReader: limited, s: s}, size)
	}
	return r.Backend.Save(ctx, name, &limited, size)
}

func (r *rateBackend) Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	rc, err := r.Backend.Load(ctx, name, offset, length)
	if err != nil || r.down == nil {
		return rc, err
	}
	return &limitedReadCloser{limitedReader: limitedReader{ctx: ctx, r: rc, l: r.down}, c: rc}, nil
}
