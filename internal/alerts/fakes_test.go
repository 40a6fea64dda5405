package alerts

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// fakeClock moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock and wakes every waiter now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// waitForSleepers polls until n goroutines wait on the clock.
func (c *fakeClock) waitForSleepers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := len(c.waiters)
		c.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no goroutine waits on the clock after 5s (want %d)", n)
}

// fakeSink records each attempt at the fake clock's time and fails the
// attempts its script says.
type fakeSink struct {
	name  string
	clock *fakeClock
	// fail returns the error of attempt n (1-based) of a message.
	fail func(m Message, n int) error

	mu       sync.Mutex
	attempts map[string][]time.Time // by key
	sent     []Message
	tried    chan Message
}

func newFakeSink(clock *fakeClock, fail func(Message, int) error) *fakeSink {
	return &fakeSink{name: "fake", clock: clock, fail: fail, attempts: map[string][]time.Time{}, tried: make(chan Message, 100)}
}

func (s *fakeSink) Name() string { return s.name }

func (s *fakeSink) Send(_ context.Context, m Message) error {
	s.mu.Lock()
	s.attempts[m.Key] = append(s.attempts[m.Key], s.clock.Now())
	n := len(s.attempts[m.Key])
	var err error
	if s.fail != nil {
		err = s.fail(m, n)
	}
	if err == nil {
		s.sent = append(s.sent, m)
	}
	s.mu.Unlock()
	s.tried <- m
	return err
}

func (s *fakeSink) attemptTimes(key string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts[key]...)
}

func (s *fakeSink) messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}

// nextAttempt waits for the sink's next attempt.
func (s *fakeSink) nextAttempt(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-s.tried:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("no attempt to send within 5s")
	}
	return Message{}
}

var errDown = errors.New("connection refused")
