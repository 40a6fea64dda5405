package wal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pgguard/pgguard/internal/lsn"
)

// timelineTail settles a conflict over the last segment of an ended
// timeline, which PostgreSQL can ask a server to archive although the
// archive holds it already.
//
// A standby that followed a switchover keeps its own copy of the old
// timeline's last segment: valid WAL up to the switch point, then whatever
// the recycled file held before. When its walreceiver dies at the end of
// that timeline instead of closing the segment (the old primary closes
// the connection as it shuts down, before the standby's end-of-streaming
// reply), PostgreSQL leaves the segment without an archive status, marks
// it ready at a later checkpoint and, once this server is a primary,
// archives it. The archive holds another copy of that segment already
// (the old primary's, or another standby's). Refusing it wedges the
// archiver on that file (it retries the oldest file first) and makes
// every clean shutdown wait out PostgreSQL's retries.
//
// Every recovery along a timeline that forked from the ended one reads
// that segment only up to the switch point. When a timeline history file
// in walDir puts the end of name's timeline inside the segment, and the
// archived copy equals data up to there, the archived copy is kept and
// ok is true; kept says so for the server log. A difference before the
// switch point, or a segment no history file ends, stays a conflict.
func timelineTail(ctx context.Context, a Archive, walDir, name string, data []byte) (kept string, ok bool, err error) {
	segSize := uint64(len(data))
	tli, segno, valid := lsn.ParseSegmentName(name, segSize)
	if !valid {
		return "", false, nil
	}
	from := lsn.LSN(segno * segSize)
	end, found := timelineEnd(walDir, tli, from, from+lsn.LSN(segSize))
	if !found {
		return "", false, nil
	}
	stored, err := a.GetWAL(ctx, name)
	if err != nil {
		return "", false, fmt.Errorf("read the archived copy: %w", err)
	}
	n := uint64(end - from)
	if uint64(len(stored)) != segSize || !bytes.Equal(stored[:n], data[:n]) {
		return "", false, nil
	}
	return fmt.Sprintf("%s: kept the archive's copy: timeline %d ended at %s, and both copies are the same up to there (what follows in the segment is no WAL of any later timeline)",
		name, tli, end), true, nil
}

// timelineEnd is the furthest switch point at which a timeline history
// file in walDir ends timeline tli, among those in (from, to]: the end of
// tli inside the segment that spans from to to.
func timelineEnd(walDir string, tli uint32, from, to lsn.LSN) (lsn.LSN, bool) {
	files, _ := filepath.Glob(filepath.Join(walDir, "*.history"))
	var end lsn.LSN
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			t, err := strconv.ParseUint(fields[0], 10, 32)
			if err != nil || uint32(t) != tli {
				continue
			}
			at, err := lsn.Parse(fields[1])
			if err != nil || at <= from || at > to {
				continue
			}
			if !found || at > end {
				end, found = at, true
			}
		}
	}
	return end, found
}
