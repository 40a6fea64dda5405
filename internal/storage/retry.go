package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Clock is the time source of the wrappers. The zero Clock is the real one;
// tests inject a fake to drive backoff and time-of-day rules.
type Clock struct {
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (c Clock) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c Clock) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Bounds of RetryPolicy.ReconnectTimeout accepted by Validate (BK-9).
const (
	MinReconnectTimeout = time.Minute
	MaxReconnectTimeout = 60 * time.Minute
)

// RetryPolicy says how WithRetry waits out a repository that cannot be
// reached. Zero fields take the defaults of DefaultRetryPolicy.
type RetryPolicy struct {
	// InitialBackoff is the first wait; each further wait doubles, up to
	// MaxBackoff, and is jittered down to half its nominal value.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// ReconnectTimeout bounds the total time one operation keeps retrying,
	// from its first retryable failure; then the operation fails.
	ReconnectTimeout time.Duration
	// MaxSaveBuffer is how many bytes of a Save input that is not an
	// io.Seeker are kept in memory so the Save can be retried. A retry
	// after more than this was read fails instead.
	MaxSaveBuffer int64
	// Clock drives the waits (zero: real time).
	Clock Clock
	// Jitter turns a nominal backoff into the actual wait (nil: uniform
	// in [d/2, d]).
	Jitter func(d time.Duration) time.Duration
	// OnRetry, if set, is told about every retry before its wait, e.g. to
	// log "repository unreachable, retrying in 4s".
	OnRetry func(op, name string, err error, wait time.Duration)
}

// DefaultRetryPolicy returns the policy used for zero fields.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		InitialBackoff:   500 * time.Millisecond,
		MaxBackoff:       30 * time.Second,
		ReconnectTimeout: 5 * time.Minute,
		MaxSaveBuffer:    16 << 20,
	}
}

// Validate checks a policy a person configured.
func (p RetryPolicy) Validate() error {
	if p.ReconnectTimeout < MinReconnectTimeout || p.ReconnectTimeout > MaxReconnectTimeout {
		return fmt.Errorf("reconnect timeout %s: must be between %s and %s", p.ReconnectTimeout, MinReconnectTimeout, MaxReconnectTimeout)
	}
	if p.InitialBackoff < 0 || p.MaxBackoff < 0 || p.MaxSaveBuffer < 0 {
		return errors.New("retry policy: backoffs and buffer size must not be negative")
	}
	return nil
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = d.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.ReconnectTimeout <= 0 {
		p.ReconnectTimeout = d.ReconnectTimeout
	}
	if p.MaxSaveBuffer <= 0 {
		p.MaxSaveBuffer = d.MaxSaveBuffer
	}
	if p.Jitter == nil {
		p.Jitter = halfJitter
	}
	return p
}

// Backoff returns the nominal wait before retry number attempt (0-based):
// InitialBackoff doubled attempt times, capped at MaxBackoff.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	d := p.InitialBackoff
	for i := 0; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

func halfJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// WithRetry wraps b so that operations failing with a retryable error are
// retried with capped exponential backoff until the policy's reconnect
// timeout. NotExist, permanent and context errors are returned at once.
// Readers returned by Load resume from where they stopped after a retryable
// read error. A List restarted midway does not repeat names. A Remove whose
// retried attempt finds the object gone reports IsNotExist, even if an
// earlier attempt removed it; callers that prune should accept that.
func WithRetry(b Backend, policy RetryPolicy) Backend {
	return &retryBackend{b: b, p: policy.withDefaults()}
}

type retryBackend struct {
	b Backend
	p RetryPolicy
}

func (r *retryBackend) Location() string { return r.b.Location() }

// do runs attempt until it succeeds, fails for good, or the reconnect
// timeout has passed since its first retryable failure. rewind, if not nil,
// prepares the next attempt.
func (r *retryBackend) do(ctx context.Context, op, name string, rewind func() error, attempt func() error) error {
	var first time.Time
	for n := 0; ; n++ {
		err := attempt()
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		now := r.p.Clock.now()
		if n == 0 {
			first = now
		}
		remaining := r.p.ReconnectTimeout - now.Sub(first)
		if remaining <= 0 {
			return fmt.Errorf("%s %s: storage %s still failing after %s (reconnect timeout), giving up: %w",
				op, name, r.b.Location(), now.Sub(first).Round(time.Second), err)
		}
		wait := min(r.p.Jitter(r.p.Backoff(n)), remaining)
		if r.p.OnRetry != nil {
			r.p.OnRetry(op, name, err, wait)
		}
		if serr := r.p.Clock.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%s %s: %w (while waiting to retry after: %v)", op, name, serr, err)
		}
		if rewind != nil {
			if rerr := rewind(); rerr != nil {
				return fmt.Errorf("%s %s: cannot retry after %v: %w", op, name, err, rerr)
			}
		}
	}
}

func (r *retryBackend) Save(ctx context.Context, name string, in io.Reader, size int64) error {
	var rewind func() error
	src := in
	if s, ok := in.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			rewind = func() error {
				if _, err := s.Seek(start, io.SeekStart); err != nil {
					return Permanent("save", name, fmt.Errorf("seek input back: %w", err))
				}
				return nil
			}
		}
	}
	if rewind == nil {
		rp := &replayReader{r: in, limit: r.p.MaxSaveBuffer}
		src, rewind = rp, func() error { return rp.rewind(name) }
	}
	return r.do(ctx, "save", name, rewind, func() error {
		return r.b.Save(ctx, name, src, size)
	})
}

// replayReader keeps what it read, up to limit, so it can be read again.
type replayReader struct {
	r        io.Reader
	limit    int64
	buf      []byte
	pos      int
	overflow bool
}

func (x *replayReader) Read(p []byte) (int, error) {
	if x.pos < len(x.buf) {
		n := copy(p, x.buf[x.pos:])
		x.pos += n
		return n, nil
	}
	n, err := x.r.Read(p)
	if n > 0 && !x.overflow {
		if int64(len(x.buf)+n) > x.limit {
			x.overflow, x.buf, x.pos = true, nil, 0
		} else {
			x.buf = append(x.buf, p[:n]...)
			x.pos += n
		}
	}
	return n, err
}

func (x *replayReader) rewind(name string) error {
	if x.overflow {
		return Permanent("save", name, fmt.Errorf("input is not seekable and more than %d bytes (the retry buffer) were already sent; pass an io.Seeker or raise the buffer", x.limit))
	}
	x.pos = 0
	return nil
}

func (r *retryBackend) Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "load", name, nil, func() (err error) {
		rc, err = r.b.Load(ctx, name, offset, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &resumingReader{r: r, ctx: ctx, name: name, offset: offset, length: length, body: rc}, nil
}

// resumingReader reopens the object at the first unread byte when a read
// fails with a retryable error.
type resumingReader struct {
	r      *retryBackend
	ctx    context.Context
	name   string
	offset int64
	length int64 // <= 0: to the end
	pos    int64 // bytes delivered so far
	body   io.ReadCloser
}

func (x *resumingReader) Read(p []byte) (int, error) {
	if x.body == nil {
		return 0, fmt.Errorf("load %s: read after close", x.name)
	}
	n, err := x.body.Read(p)
	x.pos += int64(n)
	if err == nil || err == io.EOF || !IsRetryable(err) || x.ctx.Err() != nil {
		return n, err
	}
	if x.length > 0 && x.pos >= x.length {
		return n, io.EOF
	}
	_ = x.body.Close()
	x.body = nil
	rest := int64(0)
	if x.length > 0 {
		rest = x.length - x.pos
	}
	readErr := err
	first := true
	err = x.r.do(x.ctx, "load", x.name, nil, func() (err error) {
		if first {
			first = false
			return readErr // count the failed read as the first attempt
		}
		x.body, err = x.r.b.Load(x.ctx, x.name, x.offset+x.pos, rest)
		return err
	})
	if err != nil {
		return n, err
	}
	return n, nil
}

func (x *resumingReader) Close() error {
	if x.body == nil {
		return nil
	}
	err := x.body.Close()
	x.body = nil
	return err
}

func (r *retryBackend) Stat(ctx context.Context, name string) (FileInfo, error) {
	var fi FileInfo
	err := r.do(ctx, "stat", name, nil, func() (err error) {
		fi, err = r.b.Stat(ctx, name)
		return err
	})
	return fi, err
}

// stopList carries the callback's own error through do without letting do
// retry it, even if it is a retryable storage error of another call.
type stopList struct{ err error }

func (s *stopList) Error() string { return s.err.Error() }

func (r *retryBackend) List(ctx context.Context, prefix string, fn func(FileInfo) error) error {
	// A listing that fails midway is restarted; names already delivered
	// are not delivered twice.
	seen := map[string]struct{}{}
	err := r.do(ctx, "list", prefix, nil, func() error {
		return r.b.List(ctx, prefix, func(fi FileInfo) error {
			if _, ok := seen[fi.Name]; ok {
				return nil
			}
			seen[fi.Name] = struct{}{}
			if err := fn(fi); err != nil {
				return &stopList{err: err}
			}
			return nil
		})
	})
	var stop *stopList
	if errors.As(err, &stop) {
		return stop.err
	}
	return err
}

func (r *retryBackend) Remove(ctx context.Context, name string) error {
	return r.do(ctx, "remove", name, nil, func() error {
		return r.b.Remove(ctx, name)
	})
}
