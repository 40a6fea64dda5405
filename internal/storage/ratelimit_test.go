package storage_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
)

const mib = 1 << 20

func at(h, m, s int) time.Time { return time.Date(2026, 3, 14, h, m, s, 0, time.UTC) }

func TestRateScheduleRateAt(t *testing.T) {
	office := storage.RateSchedule{Windows: []storage.RateWindow{
		{Start: storage.HourMinute(8, 0), End: storage.HourMinute(20, 0), BytesPerSec: mib},
	}}
	night := storage.RateSchedule{Default: 5 * mib, Windows: []storage.RateWindow{
		{Start: storage.HourMinute(22, 0), End: storage.HourMinute(6, 0), BytesPerSec: 0},
	}}
	overlapping := storage.RateSchedule{Default: 7, Windows: []storage.RateWindow{
		{Start: storage.HourMinute(9, 0), End: storage.HourMinute(10, 0), BytesPerSec: 1},
		{Start: storage.HourMinute(0, 0), End: storage.HourMinute(0, 0), BytesPerSec: 2},
	}}
	cases := []struct {
		name     string
		schedule storage.RateSchedule
		t        time.Time
		want     int64
	}{
		{"a second before the window opens is unlimited", office, at(7, 59, 59), 0},
		{"the window's start is inside it", office, at(8, 0, 0), mib},
		{"the last second of the window is inside it", office, at(19, 59, 59), mib},
		{"the window's end is outside it", office, at(20, 0, 0), 0},
		{"a window past midnight covers late evening", night, at(23, 30, 0), 0},
		{"a window past midnight covers early morning", night, at(5, 59, 0), 0},
		{"after a window past midnight the default applies", night, at(6, 0, 0), 5 * mib},
		{"midday outside the night window takes the default", night, at(12, 0, 0), 5 * mib},
		{"the first matching window wins", overlapping, at(9, 30, 0), 1},
		{"a window with equal start and end covers the whole day", overlapping, at(3, 0, 0), 2},
		{"no windows means the default", storage.RateSchedule{Default: 42}, at(3, 0, 0), 42},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.schedule.RateAt(tc.t); got != tc.want {
				t.Fatalf("RateAt(%s) = %d, want %d", tc.t.Format("15:04:05"), got, tc.want)
			}
		})
	}
}

func TestRateScheduleUsesTheWallClockOfTheTimesLocation(t *testing.T) {
	office := storage.RateSchedule{Windows: []storage.RateWindow{
		{Start: storage.HourMinute(8, 0), End: storage.HourMinute(20, 0), BytesPerSec: mib},
	}}
	plus3 := time.FixedZone("UTC+3", 3*3600)
	// 06:00 UTC is 09:00 at UTC+3: limited there, not in UTC.
	if got := office.RateAt(at(6, 0, 0)); got != 0 {
		t.Fatalf("06:00 UTC: rate %d, want unlimited", got)
	}
	if got := office.RateAt(at(6, 0, 0).In(plus3)); got != mib {
		t.Fatalf("09:00 UTC+3: rate %d, want %d", got, mib)
	}
}

func TestLimiterPacesTransfersToTheRate(t *testing.T) {
	c := newFakeClock(at(12, 0, 0))
	l := storage.NewLimiter(storage.RateSchedule{Default: 1000}, c.clock())
	for range 50 {
		if err := l.Wait(context.Background(), 100); err != nil {
			t.Fatal(err)
		}
	}
	// 5000 bytes at 1000 B/s with a full one-second bucket: four seconds.
	if got := c.total(); got < 3900*time.Millisecond || got > 4100*time.Millisecond {
		t.Fatalf("waited %v for 5000 bytes at 1000 B/s, want about 4s", got)
	}
}

func TestLimiterDoesNotWaitOutsideItsWindow(t *testing.T) {
	c := newFakeClock(at(21, 0, 0))
	l := storage.NewLimiter(storage.RateSchedule{Windows: []storage.RateWindow{
		{Start: storage.HourMinute(8, 0), End: storage.HourMinute(20, 0), BytesPerSec: 10},
	}}, c.clock())
	if err := l.Wait(context.Background(), 10*mib); err != nil {
		t.Fatal(err)
	}
	if len(c.slept) != 0 {
		t.Fatalf("waited %v outside the limited window", c.slept)
	}
	var nilLimiter *storage.Limiter
	if err := nilLimiter.Wait(context.Background(), mib); err != nil {
		t.Fatalf("nil limiter: %v", err)
	}
}

func TestRateLimitedBackendPacesBothDirectionsAndKeepsData(t *testing.T) {
	up, down := newFakeClock(at(12, 0, 0)), newFakeClock(at(12, 0, 0))
	b := storage.WithRateLimit(storage.NewMem(),
		storage.NewLimiter(storage.RateSchedule{Default: 100_000}, up.clock()),
		storage.NewLimiter(storage.RateSchedule{Default: 50_000}, down.clock()))
	data := bytes.Repeat([]byte("pgguard!"), 50_000) // 400 kB
	if err := b.Save(context.Background(), "obj", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("save: %v", err)
	}
	if got := readAll(t, b, "obj", 0, 0); !bytes.Equal(got, data) {
		t.Fatalf("loaded %d bytes, not the %d saved", len(got), len(data))
	}
	// (400 kB - one second's burst) / rate.
	if got := up.total(); got < 2900*time.Millisecond || got > 3100*time.Millisecond {
		t.Fatalf("upload waited %v, want about 3s", got)
	}
	if got := down.total(); got < 6900*time.Millisecond || got > 7100*time.Millisecond {
		t.Fatalf("download waited %v, want about 7s", got)
	}
}

func TestLimiterWaitEndsWithTheContext(t *testing.T) {
	l := storage.NewFixedLimiter(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, mib); err == nil {
		t.Fatalf("a wait of days with a cancelled context returned nil")
	}
}

func TestRetryAroundRateLimitRewindsASeekableInputInsteadOfBuffering(t *testing.T) {
	mem := storage.NewMem()
	f := newFlaky(mem)
	f.failNext("save", retryable())
	p := testPolicy(newFakeClock(at(12, 0, 0)))
	p.MaxSaveBuffer = 1 // a replay buffer could not hold the input
	b := storage.WithRetry(storage.WithRateLimit(f, storage.NewFixedLimiter(1<<40), nil), p)
	data := bytes.Repeat([]byte("x"), 1000)
	if err := b.Save(context.Background(), "obj", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("save through retry and rate limit: %v", err)
	}
	if got := readAll(t, mem, "obj", 0, 0); !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes, want %d", len(got), len(data))
	}
	if n := f.callCount("save"); n != 2 {
		t.Fatalf("save attempted %d times, want 2", n)
	}
}

func TestParseByteRate(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"unlimited", 0, true},
		{"0", 0, true},
		{"4096", 4096, true},
		{"512KiB", 512 << 10, true},
		{"1MiB/s", 1 << 20, true},
		{"1.5 MiB", 3 << 19, true},
		{"100MB", 100_000_000, true},
		{"2GiB", 2 << 30, true},
		{"-1MiB", 0, false},
		{"fast", 0, false},
		{"10 parsecs", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := storage.ParseByteRate(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseByteRate(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseRateWindow(t *testing.T) {
	w, err := storage.ParseRateWindow("08:00-20:00=1MiB")
	want := storage.RateWindow{Start: storage.HourMinute(8, 0), End: storage.HourMinute(20, 0), BytesPerSec: mib}
	if err != nil || w != want {
		t.Fatalf("ParseRateWindow = %+v, %v; want %+v", w, err, want)
	}
	if w, err := storage.ParseRateWindow("22:30-24:00=unlimited"); err != nil || w.End != 0 || w.Start != storage.HourMinute(22, 30) {
		t.Fatalf("24:00 as an end: %+v, %v; want end 00:00", w, err)
	}
	for _, bad := range []string{"08:00-20:00", "08:00=1MiB", "8-20=1MiB", "08:60-20:00=1MiB", "25:00-01:00=1MiB", "08:00-20:00=lots"} {
		if _, err := storage.ParseRateWindow(bad); err == nil || !strings.Contains(err.Error(), "HH:MM-HH:MM=RATE") {
			t.Errorf("ParseRateWindow(%q) = %v, want an error showing the expected form", bad, err)
		}
	}
}
