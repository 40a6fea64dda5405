package backup

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectionLost reports whether err means the database went away (its
// session ended, the server shut down or restarted, it cannot be reached),
// rather than a fault a retry cannot cure.
func ConnectionLost(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P: admin or crash shutdown,
		// cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return strings.Contains(err.Error(), "conn closed")
}

// RunReconnecting runs a backup and, while the database is lost and until
// timeout has passed since the first attempt, waits for it to accept
// connections again and takes the backup again: the blocks the lost
// attempt already stored are reused, so the new attempt carries on where
// the old one was rather than starting over (BK-9). It returns the result
// of the last attempt and how many attempts were made.
func RunReconnecting(ctx context.Context, opts Options, timeout time.Duration) (Result, int, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		res, err := Run(ctx, opts)
		if err == nil || !ConnectionLost(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return res, attempt, err
		}
		if opts.Progress != nil {
			opts.Progress.Event("database-lost", map[string]any{"attempt": attempt, "error": err.Error(),
				"waiting_seconds": time.Until(deadline).Seconds()})
		}
		if werr := waitForDatabase(ctx, opts.ConnString, deadline); werr != nil {
			return res, attempt, errors.Join(err, werr)
		}
	}
}

// waitForDatabase polls until the server accepts a session or deadline.
func waitForDatabase(ctx context.Context, connString string, deadline time.Time) error {
	var last error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, connString)
		if err == nil {
			err = conn.Ping(cctx)
			conn.Close(context.WithoutCancel(ctx))
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return errors.New("the database did not come back within the reconnect timeout: " + errString(last))
}

func errString(err error) string {
	if err == nil {
		return "no attempt"
	}
	return err.Error()
}
