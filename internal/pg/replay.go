package pg

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// ReplayTarget is where a held standby stops: before the WAL record at
// LSN when known, else before the first commit at or after Time.
type ReplayTarget struct {
	Time time.Time
	LSN  lsn.LSN
}

var (
	walRecordLSN = regexp.MustCompile(`\blsn: ([0-9A-F]+/[0-9A-F]+),`)
	walCommitAt  = regexp.MustCompile(`desc: COMMIT(?:_PREPARED)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC`)
)

// StopPointBefore finds, in the standby's own pg_wal between from (its
// replay position) and to (what it received), the record that follows the
// last commit before t: replay that stops before it has every transaction
// committed before t and nothing of any later one, not even the locks a
// later transaction took before committing (a time target stops only at a
// commit record, after such a lock was replayed, and a query on the
// locked table then waits for as long as replay is paused). It returns
// from when no commit before t is in that range.
func (i *Instance) StopPointBefore(ctx context.Context, from, to lsn.LSN, tli int, t time.Time) (lsn.LSN, error) {
	if to <= from {
		return from, nil
	}
	cmd := i.command(ctx, "pg_waldump", "--path="+filepath.Join(i.o.DataDir, "pg_wal"), "--timeline="+strconv.Itoa(tli),
		"--start="+from.String(), "--end="+to.String())
	cmd.Env = append(cmd.Env, "TZ=UTC")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("pg_waldump: %w", err)
	}
	target, afterCommit, done := from, false, false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && !done {
		line := sc.Text()
		m := walRecordLSN.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := lsn.Parse(m[1])
		if err != nil {
			continue
		}
		if afterCommit {
			target, afterCommit = at, false
		}
		if c := walCommitAt.FindStringSubmatch(line); c != nil {
			at, err := time.Parse("2006-01-02 15:04:05.999999", c[1])
			if err != nil {
				continue
			}
			if !at.Before(t) {
				done = true
				continue
			}
			afterCommit = true
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if afterCommit {
		// The last commit before t is the last record received.
		target = to
	}
	return target, nil
}
