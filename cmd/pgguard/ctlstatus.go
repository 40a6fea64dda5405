package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

func runCtlStatus(ctx context.Context, opts *ctlOptions, health bool, expect int, out io.Writer) error {
	conn, err := connect(opts, out)
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := conn.Ops.Status(sctx, true)
	if err != nil {
		return err
	}
	if err := writeOutput(out, opts.output, r, r.WriteTable); err != nil || !health {
		return err
	}
	if p := r.Problems(max(expect, len(r.Members))); len(p) > 0 {
		return fmt.Errorf("cluster %s is not healthy: %s", conn.Cluster, strings.Join(p, "; "))
	}
	return nil
}

// parseSince reads --since: empty (everything), a duration back from now,
// or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give a duration (30m, 2h) or an RFC 3339 time (2026-11-23T10:00:00Z)", v)
}

// watchStatus redraws the status table in place until interrupted.
func watchStatus(ctx context.Context, opts *ctlOptions, every time.Duration, out io.Writer) error {
	if every < 100*time.Millisecond {
		return badInput("--watch %s: at least 100ms", every)
	}
	for {
		var b strings.Builder
		if err := runCtlStatus(ctx, opts, false, 0, &b); err != nil {
			b.WriteString("error: " + err.Error() + "\n")
		}
		// Clear the screen and home the cursor, then draw.
		fmt.Fprintf(out, "\x1b[H\x1b[2J%s\n%s (every %s; Ctrl-C to stop)\n", b.String(), time.Now().Format("15:04:05"), every)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
