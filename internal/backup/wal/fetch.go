package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/storage"
)

// FetchOptions tunes Fetch.
type FetchOptions struct {
	// Prefetch is the most following segments fetched along with the
	// requested one into the spool; default 4, 0 turns prefetch off when
	// NoPrefetch is set. Like a file system's read-ahead the look-ahead
	// starts at none and doubles while the calls ask for consecutive
	// segments (aheadWindow): a recovery that needs one or two segments,
	// the end of a backup, does not wait for four more.
	Prefetch   int
	NoPrefetch bool
	// SpoolDir holds prefetched segments; default <dir of dest>/pgguard/fetch.
	SpoolDir string
	// MinFree stops the look-ahead when the spool's volume would keep
	// less than this many bytes free (the node's disk.critical): the
	// requested file is still fetched, nothing ahead of it (HA-14).
	MinFree uint64
}

// FetchResult says what Fetch did.
type FetchResult struct {
	Found   bool
	Spooled bool // served from an earlier prefetch
	// Tail: the archive lacks the segment, and the stream's tail of it
	// (zero-padded after the WAL written so far) was served instead.
	Tail       bool     `json:",omitempty"`
	Prefetched []string // segments this call put into the spool
	// SpoolFull: no look-ahead, the spool's volume is near MinFree.
	SpoolFull bool `json:",omitempty"`
}

// Fetch writes archived WAL file name to dest (restore_command's %f and
// %p). A file the archive does not have is Found false with no error:
// PostgreSQL asks for files that do not exist (the next timeline's history
// file, the segment after the end of the archive) and must be told "no"
// quietly.
func Fetch(ctx context.Context, a Archive, name, dest string, opts FetchOptions) (FetchResult, error) {
	var res FetchResult
	if opts.Prefetch <= 0 && !opts.NoPrefetch {
		opts.Prefetch = 4
	}
	if opts.NoPrefetch {
		opts.Prefetch = 0
	}
	spool := opts.SpoolDir
	if spool == "" {
		spool = filepath.Join(filepath.Dir(dest), SpoolName, "fetch")
	}
	cleanFetchSpool(spool, name)
	// A temporary file beside dest is a fetch's that was killed: PostgreSQL
	// runs one restore_command at a time.
	if stale, err := filepath.Glob(filepath.Join(filepath.Dir(dest), filepath.Base(dest)+".*.tmp")); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	ahead := aheadWindow(spool, name, opts.Prefetch)
	// Only segments are spooled (the spool also holds its sequence record).
	if lsn.IsSegmentName(name) && os.Rename(filepath.Join(spool, name), dest) == nil {
		res.Found, res.Spooled = true, true
		if fi, err := os.Stat(dest); err == nil && opts.Prefetch > 0 {
			recordSequence(spool, name, fi.Size(), ahead)
		}
		return res, nil
	}
	size, err := fetchToFile(ctx, a, name, dest, false)
	if storage.IsNotExist(err) {
		return fetchTail(ctx, a, name, dest)
	}
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w", name, err)
	}
	res.Found = true
	if opts.Prefetch > 0 {
		recordSequence(spool, name, size, ahead)
	}
	next := nextSegments(name, size, ahead)
	if len(next) == 0 {
		return res, nil
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return res, nil // prefetch is an optimisation; the requested file is in place
	}
	if opts.MinFree > 0 {
		var st syscall.Statfs_t
		need := uint64(len(next)) * uint64(size)
		if err := syscall.Statfs(spool, &st); err != nil || st.Bavail*uint64(st.Bsize) < opts.MinFree+need {
			res.SpoolFull = true
			return res, nil
		}
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, n := range next {
		if _, err := os.Stat(filepath.Join(spool, n)); err == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fetchToFile(ctx, a, n, filepath.Join(spool, n), true); err != nil {
				return
			}
			mu.Lock()
			res.Prefetched = append(res.Prefetched, n)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res, nil
}

// fetchToFile puts archived WAL file name at path (through a temporary
// file and a rename; synced when sync is set) and returns its size. An
// error leaves path as it was.
func fetchToFile(ctx context.Context, a Archive, name, path string, sync bool) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	n, err := a.WriteWALTo(ctx, name, f)
	if err != nil && !storage.IsNotExist(err) {
		err = fmt.Errorf("to %s: %w", path, err)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", path, cerr)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, nil
}

// sequenceFile, in the spool, holds the segment the next call is expected
// to ask for if recovery reads on, and the look-ahead of the last call.
const sequenceFile = "sequence"

// aheadWindow returns how many segments to fetch ahead of name, at most
// limit: none unless the previous call asked for the segment just before
// name, then 1, 2, 4, ... while the calls go on in order, spooled or not.
// A server that replays a long stretch of archive ramps up within three
// calls; one that needs a single segment, or asks for one again at the
// end of recovery (to start its new timeline), fetches nothing it will
// not read.
func aheadWindow(spool, name string, limit int) int {
	if limit <= 0 || !lsn.IsSegmentName(name) {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(spool, sequenceFile))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] != name {
		return 0
	}
	last, err := strconv.Atoi(f[1])
	if err != nil {
		return 0
	}
	return min(limit, max(1, 2*last))
}

// recordSequence notes, best effort, that name (a segment of segSize
// bytes) was served with a look-ahead of ahead.
func recordSequence(spool, name string, segSize int64, ahead int) {
	next := nextSegments(name, segSize, 1)
	if len(next) == 0 || os.MkdirAll(spool, 0o700) != nil {
		return
	}
	_ = writeFileRenamed(filepath.Join(spool, sequenceFile), fmt.Appendf(nil, "%s %d\n", next[0], ahead), false)
}

// nextSegments returns the n segment names after name on its timeline,
// for segments of segSize bytes (a power of two from 1 MiB to 1 GiB).
func nextSegments(name string, segSize int64, n int) []string {
	if n <= 0 || segSize <= 0 {
		return nil
	}
	size := uint64(segSize)
	tli, segno, ok := lsn.ParseSegmentName(name, size)
	if !ok {
		return nil
	}
	out := make([]string, 0, n)
	for k := range uint64(n) {
		out = append(out, lsn.SegmentName(tli, segno+1+k, size))
	}
	return out
}

// cleanFetchSpool removes prefetched segments of name's timeline that come
// before name: recovery has moved past them.
func cleanFetchSpool(spool, name string) {
	if !lsn.IsSegmentName(name) {
		return
	}
	entries, err := os.ReadDir(spool)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".tmp") || (lsn.IsSegmentName(n) && n[:8] == name[:8] && n < name) {
			os.Remove(filepath.Join(spool, n))
		}
	}
}

// TailAllowed reports whether the server that asks may be given a tail:
// only a targeted recovery (recovery.signal beside pg_wal: a restore from
// the repository, which has no other source of WAL), never a standby
// (standby.signal). A standby has, or streams, the whole segment itself;
// a tail restored in its place ends the WAL there, and a standby promoted
// at that moment ends its recovery at the tail, dropping what it had
// received and flushed beyond it: commits acknowledged in sync mode
// (chaos-ci, agent-kill and primary-store-cut in sync mode, 2026-12-04).
// dest is restore_command's %p, relative to the data directory or not.
func TailAllowed(dest string) bool {
	dataDir := filepath.Dir(filepath.Dir(dest))
	if _, err := os.Stat(filepath.Join(dataDir, "recovery.signal")); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dataDir, "standby.signal"))
	return errors.Is(err, os.ErrNotExist)
}

// tailArchive is an archive that also keeps the stream's tails of
// incomplete segments.
type tailArchive interface {
	GetWALTail(ctx context.Context, segment string) ([]byte, error)
}

// fetchTail serves the newest tail the WAL stream stored of a segment the
// archive lacks (on the last timeline only; the repository checks that):
// PostgreSQL replays a segment zero-padded after its valid records up to
// there, which is how a restore reaches the last second before a loss.
func fetchTail(ctx context.Context, a Archive, name, dest string) (FetchResult, error) {
	ta, ok := a.(tailArchive)
	if !ok || !lsn.IsSegmentName(name) || !TailAllowed(dest) {
		return FetchResult{}, nil
	}
	data, err := ta.GetWALTail(ctx, name)
	if storage.IsNotExist(err) {
		return FetchResult{}, nil
	}
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: %w", name, err)
	}
	if err := writeFileRenamed(dest, data, false); err != nil {
		return FetchResult{}, fmt.Errorf("fetch %s: write %s: %w", name, dest, err)
	}
	return FetchResult{Found: true, Tail: true}, nil
}
