package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

// fakeClock advances only when slept on.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) clock() storage.Clock {
	return storage.Clock{Now: c.Now, Sleep: c.Sleep}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *fakeClock) total() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum time.Duration
	for _, d := range c.slept {
		sum += d
	}
	return sum
}

// flaky wraps a backend and fails chosen calls.
type flaky struct {
	storage.Backend
	mu    sync.Mutex
	fail  map[string][]error // per operation, errors returned by the next calls
	calls map[string]int
	// listFailAfter makes the first List fail with a retryable error after
	// delivering this many objects (0: off).
	listFailAfter int
	// loadBreakAfter makes the reader of the first Load fail with a
	// retryable error after this many bytes (0: off).
	loadBreakAfter int64
}

func newFlaky(b storage.Backend) *flaky {
	return &flaky{Backend: b, fail: map[string][]error{}, calls: map[string]int{}}
}

var errNetDown = errors.New("connection refused")

func (f *flaky) failNext(op string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = append(f.fail[op], errs...)
}

func (f *flaky) take(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if len(f.fail[op]) == 0 {
		return nil
	}
	err := f.fail[op][0]
	f.fail[op] = f.fail[op][1:]
	return err
}

func (f *flaky) callCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *flaky) Save(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := f.take("save"); err != nil {
		_, _ = io.Copy(io.Discard, r) // a failed upload has consumed its input
		return err
	}
	return f.Backend.Save(ctx, name, r, size)
}

func (f *flaky) Stat(ctx context.Context, name string) (storage.FileInfo, error) {
	if err := f.take("stat"); err != nil {
		return storage.FileInfo{}, err
	}
	return f.Backend.Stat(ctx, name)
}

func (f *flaky) Remove(ctx context.Context, name string) error {
	if err := f.take("remove"); err != nil {
		return err
	}
	return f.Backend.Remove(ctx, name)
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(storage.FileInfo) error) error {
	if err := f.take("list"); err != nil {
		return err
	}
	f.mu.Lock()
	failAfter := f.listFailAfter
	f.listFailAfter = 0
	f.mu.Unlock()
	delivered := 0
	return f.Backend.List(ctx, prefix, func(fi storage.FileInfo) error {
		if failAfter > 0 && delivered == failAfter {
			return storage.Retryable("list", prefix, errNetDown)
		}
		delivered++
		return fn(fi)
	})
}

func (f *flaky) Load(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := f.take("load"); err != nil {
		return nil, err
	}
	rc, err := f.Backend.Load(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	breakAfter := f.loadBreakAfter
	f.loadBreakAfter = 0
	f.mu.Unlock()
	if breakAfter > 0 {
		return &breakingReader{rc: rc, left: breakAfter, name: name}, nil
	}
	return rc, nil
}

type breakingReader struct {
	rc   io.ReadCloser
	left int64
	name string
}

func (b *breakingReader) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, storage.Retryable("load", b.name, errNetDown)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *breakingReader) Close() error { return b.rc.Close() }

func testPolicy(c *fakeClock) storage.RetryPolicy {
	return storage.RetryPolicy{
		InitialBackoff:   time.Second,
		MaxBackoff:       10 * time.Second,
		ReconnectTimeout: time.Minute,
		Clock:            c.clock(),
		Jitter:           func(d time.Duration) time.Duration { return d },
	}
}

func retryable() error { return storage.Retryable("op", "obj", errNetDown) }

func TestRetryStatRetriesTransientFailuresWithGrowingWaits(t *testing.T) {
	mem := storage.NewMem()
	if err := mem.Save(context.Background(), "obj", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	f := newFlaky(mem)
	f.failNext("stat", retryable(), retryable(), retryable())
	c := newFakeClock(time.Unix(0, 0))
	fi, err := storage.WithRetry(f, testPolicy(c)).Stat(context.Background(), "obj")
	if err != nil || fi.Size != 3 {
		t.Fatalf("stat = %+v, %v; want size 3 after retries", fi, err)
	}
	if got, want := c.slept, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("waits = %v, want %v", got, want)
	}
	if n := f.callCount("stat"); n != 4 {
		t.Fatalf("stat called %d times, want 4", n)
	}
}

func TestRetryReturnsFinalErrorsAtOnce(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"permanent error is not retried", storage.Permanent("stat", "obj", errors.New("access denied")), storage.IsPermanent},
		{"not-exist is not retried", storage.NotExist("stat", "obj", nil), storage.IsNotExist},
		{"context error is not retried", context.DeadlineExceeded, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlaky(storage.NewMem())
			f.failNext("stat", tc.err)
			c := newFakeClock(time.Unix(0, 0))
			_, err := storage.WithRetry(f, testPolicy(c)).Stat(context.Background(), "obj")
			if !tc.check(err) {
				t.Fatalf("err = %v, want the original kind", err)
			}
			if n := f.callCount("stat"); n != 1 || len(c.slept) != 0 {
				t.Fatalf("called %d times with waits %v; want one call, no wait", n, c.slept)
			}
		})
	}
}

func TestRetryGivesUpAtTheReconnectTimeout(t *testing.T) {
	f := newFlaky(storage.NewMem())
	for range 100 {
		f.failNext("remove", retryable())
	}
	c := newFakeClock(time.Unix(0, 0))
	err := storage.WithRetry(f, testPolicy(c)).Remove(context.Background(), "obj")
	if !storage.IsRetryable(err) || !strings.Contains(err.Error(), "reconnect timeout") {
		t.Fatalf("err = %v, want a retryable error naming the reconnect timeout", err)
	}
	// Waits 1+2+4+8, then 10 s four times, then the 5 s left: one minute.
	if got := c.total(); got != time.Minute {
		t.Fatalf("waited %v in total (%v), want exactly the 1m reconnect timeout", got, c.slept)
	}
	if n := f.callCount("remove"); n != 10 {
		t.Fatalf("remove attempted %d times, want 10", n)
	}
}

func TestRetryStopsWaitingWhenTheContextEnds(t *testing.T) {
	f := newFlaky(storage.NewMem())
	for range 100 {
		f.failNext("stat", retryable())
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := testPolicy(newFakeClock(time.Unix(0, 0)))
	p.OnRetry = func(string, string, error, time.Duration) { cancel() }
	_, err := storage.WithRetry(f, p).Stat(ctx, "obj")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := f.callCount("stat"); n != 1 {
		t.Fatalf("stat attempted %d times after cancellation, want 1", n)
	}
}

func TestRetrySaveResendsTheWholeInput(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	cases := []struct {
		name  string
		input func() io.Reader
		want  []byte
	}{
		{"seekable input is sought back to where it started",
			func() io.Reader { r := bytes.NewReader(data); _, _ = r.Seek(5, io.SeekStart); return r }, data[5:]},
		{"non-seekable input is replayed from the retry buffer",
			func() io.Reader { return io.MultiReader(bytes.NewReader(data[:7]), bytes.NewReader(data[7:])) }, data},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := storage.NewMem()
			f := newFlaky(mem)
			f.failNext("save", retryable(), retryable())
			b := storage.WithRetry(f, testPolicy(newFakeClock(time.Unix(0, 0))))
			if err := b.Save(context.Background(), "obj", tc.input(), int64(len(tc.want))); err != nil {
				t.Fatalf("save: %v", err)
			}
			if got := readAll(t, mem, "obj", 0, 0); !bytes.Equal(got, tc.want) {
				t.Fatalf("stored %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRetrySaveOfUnbufferedInputFailsClearly(t *testing.T) {
	f := newFlaky(storage.NewMem())
	f.failNext("save", retryable())
	p := testPolicy(newFakeClock(time.Unix(0, 0)))
	p.MaxSaveBuffer = 10
	data := bytes.Repeat([]byte("x"), 100)
	err := storage.WithRetry(f, p).Save(context.Background(), "obj", io.MultiReader(bytes.NewReader(data)), 100)
	if !storage.IsPermanent(err) || !strings.Contains(err.Error(), "not seekable") {
		t.Fatalf("err = %v, want a permanent error explaining the input is not seekable", err)
	}
	if n := f.callCount("save"); n != 1 {
		t.Fatalf("save attempted %d times, want 1", n)
	}
}

func TestRetryListRestartedMidwayDeliversEachNameOnce(t *testing.T) {
	mem := storage.NewMem()
	for i := range 6 {
		if err := mem.Save(context.Background(), fmt.Sprintf("l/%d", i), strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	f := newFlaky(mem)
	f.listFailAfter = 3
	seen := map[string]int{}
	err := storage.WithRetry(f, testPolicy(newFakeClock(time.Unix(0, 0)))).List(context.Background(), "l/", func(fi storage.FileInfo) error {
		seen[fi.Name]++
		return nil
	})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(seen) != 6 {
		t.Fatalf("saw %d names (%v), want 6", len(seen), seen)
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", name, n)
		}
	}
	if n := f.callCount("list"); n != 2 {
		t.Fatalf("list called %d times, want 2", n)
	}
}

func TestRetryDoesNotRetryTheCallbacksOwnError(t *testing.T) {
	mem := storage.NewMem()
	if err := mem.Save(context.Background(), "obj", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	f := newFlaky(mem)
	cbErr := storage.Retryable("load", "other", errNetDown)
	err := storage.WithRetry(f, testPolicy(newFakeClock(time.Unix(0, 0)))).List(context.Background(), "", func(storage.FileInfo) error {
		return cbErr
	})
	if !errors.Is(err, cbErr) || f.callCount("list") != 1 {
		t.Fatalf("list returned %v after %d calls; want the callback's error after 1", err, f.callCount("list"))
	}
}

func TestRetryLoadResumesAtTheFirstUnreadByte(t *testing.T) {
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	cases := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole object", 0, 0, data},
		{"range", 100, 500, data[100:600]},
		{"offset to the end", 300, 0, data[300:]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := storage.NewMem()
			if err := mem.Save(context.Background(), "obj", bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			f := newFlaky(mem)
			f.loadBreakAfter = 123
			f.failNext("load", retryable()) // first open fails too
			got := readAll(t, storage.WithRetry(f, testPolicy(newFakeClock(time.Unix(0, 0)))), "obj", tc.offset, tc.length)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("read %d bytes, want %d identical ones", len(got), len(tc.want))
			}
			if n := f.callCount("load"); n != 3 {
				t.Fatalf("load called %d times, want 3 (failed open, broken read, resume)", n)
			}
		})
	}
}

func TestRetryBackoffDoublesUpToTheCap(t *testing.T) {
	p := storage.RetryPolicy{InitialBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}
	cases := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 500 * time.Millisecond},
		{1, time.Second},
		{5, 16 * time.Second},
		{6, 30 * time.Second},
		{100, 30 * time.Second},
	}
	for _, tc := range cases {
		if got := p.Backoff(tc.attempt); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestRetryPolicyValidateEnforcesTheReconnectTimeoutRange(t *testing.T) {
	cases := []struct {
		name    string
		timeout time.Duration
		ok      bool
	}{
		{"below one minute is refused", 30 * time.Second, false},
		{"one minute is accepted", time.Minute, true},
		{"sixty minutes is accepted", time.Hour, true},
		{"above sixty minutes is refused", 61 * time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := storage.DefaultRetryPolicy()
			p.ReconnectTimeout = tc.timeout
			if err := p.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func readAll(t *testing.T, b storage.Backend, name string, offset, length int64) []byte {
	t.Helper()
	rc, err := b.Load(context.Background(), name, offset, length)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return data
}
