// Package walspool is archive_command's record of what is archived
// already: a file per WAL segment in pg_wal/pgguard/push holding the
// SHA-256 of the content stored, left by a wal-push that pushed the
// segment ahead or by the agent's WAL stream, and the stream's mark that
// it runs. A call that finds the record for the file it is given, with the
// same content, returns without opening the repository. It also holds
// both sides of restore_command's request to the agent (fetch.go).
//
// It imports only the standard library: the small pgguard-wal program
// that PostgreSQL runs as archive_command and restore_command links it, and starts in a few
// milliseconds where the whole pgguard binary takes tens (hundreds on a
// busy host) before its first line runs.
package walspool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SpoolName is the spool directory created inside the directory of the WAL
// file PostgreSQL names (pg_wal). Backups never copy pg_wal's content.
const SpoolName = "pgguard"

// StreamMark is the file in the push spool that the agent's WAL stream
// touches while it runs (about every second) and removes when it ends.
const StreamMark = "stream.alive"

// StreamWait bounds how long a push waits for the WAL stream to store a
// segment before it pushes the segment itself.
const StreamWait = 3 * time.Second

// PushDir is the push spool of the WAL file at path.
func PushDir(path string) string { return filepath.Join(filepath.Dir(path), SpoolName, "push") }

// Archived reports whether the file at path (archive_command's %p) is
// archived already with this content, waiting up to StreamWait for the
// WAL stream's record while the stream runs: PostgreSQL calls
// archive_command the moment a segment is complete, a little before the
// stream has stored it. The record is consumed.
func Archived(ctx context.Context, path string) (bool, error) {
	ok, err := Confirmed(path)
	if !ok && err == nil && AwaitStream(ctx, path, StreamWait) {
		ok, err = Confirmed(path)
	}
	return ok, err
}

// Confirmed reports whether the file at path is already archived with
// this content, from the record an earlier push or the WAL stream left,
// without waiting. The record is consumed.
func Confirmed(path string) (bool, error) {
	return Consume(PushDir(path), path, filepath.Base(path))
}

// AwaitStream waits, up to limit, for the WAL stream's record of the file
// at path when the stream runs (its mark is fresh). It reports whether a
// record appeared; Confirmed then checks it.
func AwaitStream(ctx context.Context, path string, limit time.Duration) bool {
	spool := PushDir(path)
	st, err := os.Stat(filepath.Join(spool, StreamMark))
	if err != nil || time.Since(st.ModTime()) > 3*time.Second {
		return false
	}
	if first, err := os.ReadFile(filepath.Join(spool, StreamMark)); err == nil && !streamStores(strings.TrimSpace(string(first)), filepath.Base(path)) {
		return false
	}
	rec := filepath.Join(spool, filepath.Base(path)+".ok")
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(rec); err == nil {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		if _, err := os.Stat(filepath.Join(spool, StreamMark)); err != nil {
			return false // the stream ended meanwhile (it removes its mark)
		}
		time.Sleep(5 * time.Millisecond) // polling a file another process writes, with a deadline
	}
}

// streamStores reports whether a stream whose first segment is first
// will store the file name: its timeline's history file, or a segment of
// its timeline from first on. Any other file (an older timeline's
// segment or history, a .partial, a backup label) is never the stream's
// to store, and waiting for it would only delay the push (a switchover's
// clean shutdown waits for every one). A mark without a segment name
// (an older agent's) says nothing: the push waits as before.
func streamStores(first, name string) bool {
	if !isSegmentName(first) {
		return true
	}
	tli := first[:8]
	if hist, ok := strings.CutSuffix(name, ".history"); ok {
		return hist == tli
	}
	return isSegmentName(name) && name[:8] == tli && name[8:] >= first[8:]
}

// isSegmentName: 24 upper-case hexadecimal digits (lsn.IsSegmentName,
// which this package does not import to stay small).
func isSegmentName(s string) bool {
	if len(s) != 24 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Consume reports whether the record of name in spool holds the SHA-256
// of the file at path, and forgets the record.
func Consume(spool, path, name string) (bool, error) {
	rec := filepath.Join(spool, name+".ok")
	want, err := os.ReadFile(rec)
	if err != nil {
		return false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("push %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("push %s: %w", name, err)
	}
	os.Remove(rec)
	return strings.TrimSpace(string(want)) == hex.EncodeToString(h.Sum(nil)), nil
}
