package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/status"
)

// Reading the demo cluster's status and waiting for it to be healthy.

// Status reads the cluster's status report from the store (without the
// store's own members: this is what polling loops call).
func (l Layout) Status(ctx context.Context) (status.Report, error) {
	return l.status(ctx, false)
}

// StatusWithStore is Status with every etcd member asked for its own
// status, as `ctl status` shows it.
func (l Layout) StatusWithStore(ctx context.Context) (status.Report, error) {
	return l.status(ctx, true)
}

func (l Layout) status(ctx context.Context, withStore bool) (status.Report, error) {
	store, err := l.OpenStore()
	if err != nil {
		return status.Report{}, err
	}
	defer store.Close()
	return dcs.ReadStatus(ctx, store, l.Cluster, withStore)
}

// WaitHealthy polls until one primary leads and every other node streams,
// or the deadline passes; the error then says what was last seen.
func (l Layout) WaitHealthy(ctx context.Context, timeout time.Duration, progress func(status.Report)) (status.Report, error) {
	return l.WaitHealthyN(ctx, timeout, len(l.Nodes), progress)
}

// WaitHealthyN is WaitHealthy for a cluster of want members (some of the
// layout's nodes not started yet).
func (l Layout) WaitHealthyN(ctx context.Context, timeout time.Duration, want int, progress func(status.Report)) (status.Report, error) {
	read := func(ctx context.Context) (status.Report, error) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return l.Status(sctx)
	}
	healthy := func(r status.Report) bool {
		if progress != nil {
			progress(r)
		}
		return r.Healthy(want)
	}
	return PollStatus(ctx, timeout, read, healthy, func(last status.Report, lastErr error) error {
		return fmt.Errorf("cluster not healthy after %s; last seen: %s (store error: %v)", timeout, describe(last), lastErr)
	})
}

// PollStatus reads a status report with read every 300 ms until done
// accepts one, and returns it. When ctx ends first it returns the last
// report read and ctx's error; when timeout passes first, the last report
// read and the error stale makes of it and of the last read's error (nil
// when that read succeeded).
func PollStatus(ctx context.Context, timeout time.Duration, read func(context.Context) (status.Report, error),
	done func(status.Report) bool, stale func(last status.Report, lastErr error) error) (status.Report, error) {
	deadline := time.Now().Add(timeout)
	var last status.Report
	var lastErr error
	for time.Now().Before(deadline) {
		r, err := read(ctx)
		if err == nil {
			last, lastErr = r, nil
			if done(r) {
				return r, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return last, stale(last, lastErr)
}

func describe(r status.Report) string {
	var parts []string
	for _, m := range r.Members {
		parts = append(parts, fmt.Sprintf("%s=%s/%s", m.Name, m.Role, m.State))
	}
	return fmt.Sprintf("leader=%q members=[%s]", r.Leader, strings.Join(parts, " "))
}
