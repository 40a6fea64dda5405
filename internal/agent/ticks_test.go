package agent

import (
	"context"
	"testing"
	"time"
)

// ticks stops when fn says so, and when ctx ends; every's stop function
// returns.
func TestTicksStopsOnFalseAndOnContext(t *testing.T) {
	n := 0
	ticks(context.Background(), time.Millisecond, func() bool {
		n++
		return n < 3
	})
	if n != 3 {
		t.Fatalf("fn ran %d times, want 3 (it returned false on the third)", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	m := 0
	ticks(ctx, time.Millisecond, func() bool {
		m++
		if m == 2 {
			cancel()
		}
		return true
	})
	if m < 2 {
		t.Fatalf("fn ran %d times before ticks returned, want at least 2", m)
	}

	// every's stop function returns once the goroutine has ended (a
	// test that hangs here is the failure).
	running := make(chan struct{}, 1)
	stop := every(context.Background(), time.Millisecond, func() bool {
		select {
		case running <- struct{}{}:
		default:
		}
		return true
	})
	<-running
	stop()
}
