// Package wal archives PostgreSQL WAL into a repository and brings it back:
// Push is archive_command, Fetch is restore_command. Both are called by
// PostgreSQL one file at a time; both work ahead in parallel (Push on the
// other segments already marked .ready, Fetch on the segments that follow)
// and keep what they did in a spool directory next to pg_wal so that the
// following calls return at once.
//
// It never writes into pg_wal/archive_status (that is PostgreSQL's), never
// deletes a WAL file from pg_wal, and trusts a spool entry only as far as
// it can check it: a pushed segment is skipped only if its content hash is
// the one recorded when it was pushed.
package wal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/walspool"
)

// SpoolName is the spool directory created inside the directory of the WAL
// file PostgreSQL names (pg_wal). Backups never copy pg_wal's content.
const SpoolName = walspool.SpoolName

// Archive is what Push and Fetch need of a repository.
type Archive interface {
	PutWAL(ctx context.Context, name string, data []byte) error
	GetWAL(ctx context.Context, name string) ([]byte, error)
	// WriteWALTo writes the file into w as it reads it, checked at the
	// end (restore_command's path: a segment is never held whole).
	WriteWALTo(ctx context.Context, name string, w io.Writer) (int64, error)
}

// PushOptions tunes Push.
type PushOptions struct {
	// Parallel is how many files are pushed at once, the requested one
	// included; default 4. 1 pushes only the requested file.
	Parallel int
	// SpoolDir records pushed-ahead files; default <dir of path>/pgguard/push.
	SpoolDir string
}

// PushResult says what Push did.
type PushResult struct {
	// Spooled is true when the file had been pushed ahead by an earlier
	// call and only its hash was checked.
	Spooled bool
	// Ahead lists the other .ready files pushed by this call.
	Ahead []string
	// AheadFailed lists .ready files whose push ahead failed; PostgreSQL
	// will ask for them again.
	AheadFailed map[string]error
	// Kept says why the archive's own copy of the requested file was kept
	// in place of this server's different one (see timelineTail); empty
	// when the file was stored or matched.
	Kept string
}

// Push archives the WAL or history file at path (archive_command's %p,
// relative to the current directory, the data directory). Pushing the same
// content again succeeds; other content under an archived name fails with
// an error wrapping repo.ErrWALConflict.
func Push(ctx context.Context, a Archive, path string, opts PushOptions) (PushResult, error) {
	res := PushResult{AheadFailed: map[string]error{}}
	if opts.Parallel < 1 {
		opts.Parallel = 4
	}
	name := filepath.Base(path)
	walDir := filepath.Dir(path)
	spool := opts.SpoolDir
	if spool == "" {
		spool = filepath.Join(walDir, SpoolName, "push")
	}
	if ok, err := walspool.Consume(spool, path, name); err != nil {
		return res, err
	} else if ok {
		res.Spooled = true
		return res, nil
	}
	ready := readyFiles(walDir, name)
	ahead := make([]string, 0, opts.Parallel-1)
	for _, n := range ready {
		if len(ahead) == opts.Parallel-1 {
			break
		}
		if _, err := os.Stat(filepath.Join(spool, n+".ok")); err == nil {
			continue
		}
		ahead = append(ahead, n)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		mainErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, res.Kept, mainErr = pushMain(ctx, a, path, name)
	}()
	for _, n := range ahead {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum, err := pushFile(ctx, a, filepath.Join(walDir, n), n)
			if err == nil {
				err = recordPushed(spool, n, sum)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.AheadFailed[n] = err
				return
			}
			res.Ahead = append(res.Ahead, n)
		}()
	}
	wg.Wait()
	slices.Sort(res.Ahead)
	cleanSpool(spool, ready)
	return res, mainErr
}

func pushFile(ctx context.Context, a Archive, path, name string) (string, error) {
	sum, _, err := pushMain(ctx, a, path, name)
	return sum, err
}

// pushMain stores the file at path under name and returns its SHA-256.
// When the archive holds a different copy of the last segment of an
// ended timeline that agrees with this one up to the timeline's end, it
// keeps the archived copy and says so in kept (see timelineTail).
func pushMain(ctx context.Context, a Archive, path, name string) (sum, kept string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("push %s: %w", name, err)
	}
	if err := a.PutWAL(ctx, name, data); err != nil {
		if !errors.Is(err, repo.ErrWALConflict) {
			return "", "", fmt.Errorf("push %s: %w", name, err)
		}
		kept, ok, terr := timelineTail(ctx, a, filepath.Dir(path), name, data)
		if terr != nil {
			return "", "", fmt.Errorf("push %s: refusing to overwrite: the archive holds a different %s (%w), and comparing the two up to the end of its timeline failed: %v", name, name, err, terr)
		}
		if !ok {
			return "", "", fmt.Errorf("push %s: refusing to overwrite: the archive holds a different %s (%w); is another cluster archiving into this repository, or was this one restored without a new timeline?", name, name, err)
		}
		sum := sha256.Sum256(data)
		return hex.EncodeToString(sum[:]), kept, nil
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:]), "", nil
}

// readyFiles lists the files PostgreSQL still has to archive, except name,
// oldest first.
func readyFiles(walDir, name string) []string {
	entries, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".ready")
		if ok && n != name {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func recordPushed(spool, name, sum string) error {
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return writeFileAtomic(filepath.Join(spool, name+".ok"), []byte(sum+"\n"))
}

// cleanSpool drops records of files PostgreSQL no longer has ready (it
// archived them by other means, or they were recycled).
func cleanSpool(spool string, ready []string) {
	entries, err := os.ReadDir(spool)
	if err != nil {
		return
	}
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".ok")
		if ok && !slices.Contains(ready, n) {
			os.Remove(filepath.Join(spool, e.Name()))
		}
	}
}

// writeFileAtomic writes data to path through a temporary file of its
// own (two writers of one path never share one), synced, and a rename, so
// a reader never sees a partial file, even after a crash.
func writeFileAtomic(path string, data []byte) error {
	return writeFileRenamed(path, data, true)
}

// writeFileRenamed is writeFileAtomic, with the sync only when sync is
// set. restore_command's file needs none: PostgreSQL reads it at once,
// and after a crash asks again (it removes the file before each call);
// syncing a segment took as long as fetching it (about 100 ms of a
// promotion's end of recovery).
func writeFileRenamed(path string, data []byte, sync bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(tmp)
			return err
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// PushReady archives, in this process, every file PostgreSQL marked ready
// in walDir that the spool has no record of, and every segment of a
// timeline before tli that has no archive status yet, oldest first, and
// leaves a record of each: PostgreSQL's own archive_command calls for
// them then return at once. A segment of an older timeline without a
// status is a standby's leftover (see timelineTail) that a later
// checkpoint marks ready, possibly the shutdown checkpoint itself. It is
// for a caller that keeps the repository open (the agent, before a
// switchover's clean shutdown, which waits for the archiver to archive
// every ready file). It stops when ctx ends; what it did not reach is
// left to archive_command.
func PushReady(ctx context.Context, a Archive, walDir string, tli uint32) PushResult {
	res := PushResult{AheadFailed: map[string]error{}}
	spool := filepath.Join(walDir, SpoolName, "push")
	for _, n := range slices.Concat(readyFiles(walDir, ""), leftovers(walDir, tli)) {
		if ctx.Err() != nil {
			break
		}
		if _, err := os.Stat(filepath.Join(spool, n+".ok")); err == nil {
			continue
		}
		sum, kept, err := pushMain(ctx, a, filepath.Join(walDir, n), n)
		if err == nil {
			err = recordPushed(spool, n, sum)
		}
		if err != nil {
			res.AheadFailed[n] = err
			continue
		}
		res.Ahead = append(res.Ahead, n)
		if kept != "" {
			res.Kept = kept
		}
	}
	return res
}

// leftovers lists the segments in walDir of timelines before tli that
// have neither a .ready nor a .done status, oldest first.
func leftovers(walDir string, tli uint32) []string {
	entries, err := os.ReadDir(walDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !lsn.IsSegmentName(n) || !e.Type().IsRegular() {
			continue
		}
		if t, err := strconv.ParseUint(n[:8], 16, 32); err != nil || uint32(t) >= tli {
			continue
		}
		status := filepath.Join(walDir, "archive_status", n)
		if _, err := os.Stat(status + ".ready"); err == nil {
			continue
		}
		if _, err := os.Stat(status + ".done"); err == nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
