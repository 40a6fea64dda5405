// Package walstats is the record the WAL archive leaves for the agent.
// archive_command runs `pgguard wal-push` as a child of PostgreSQL, not of
// the agent, so the agent never sees a push happen: each push adds its
// latency and outcome to a small file beside the data directory, under a
// lock, and the agent reads the totals when it is scraped (the cumulative
// counts of a Prometheus histogram, so nothing is lost between scrapes and
// the file never grows).
//
// The record only counts: it never holds a WAL file name, a path, an
// error text or anything of the repository's settings. Failing to write it
// must never fail a push.
package walstats

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// FileName is the record's name, in the data directory's parent (the
// directory the agent keeps postgres.log in, owned by the database
// account): never inside the data directory, which base backups, rewinds
// and restores copy.
const FileName = "wal-push-stats.json"

// Version is the record's format; a record of another version (or
// another bucket layout) is started afresh, which a reader sees as a
// counter reset.
const Version = 1

// Path is where the record of the instance in dataDir lives. The data
// directory's links are resolved: pgguard-wal knows it only as its working
// directory (PostgreSQL runs archive_command there), the agent and wal-push
// as configured, and all three must name the same record.
func Path(dataDir string) string {
	dir := filepath.Clean(dataDir)
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved
	}
	return filepath.Join(filepath.Dir(dir), FileName)
}

// Buckets are the upper bounds, in seconds, of the latency histogram.
func Buckets() []float64 {
	return []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
}

// Stats are the totals since the record was started.
type Stats struct {
	Version int `json:"version"`
	// Buckets are the histogram's upper bounds; Counts[i] how many pushes
	// took at most Buckets[i] and more than Buckets[i-1] (not cumulative).
	Buckets []float64 `json:"buckets"`
	Counts  []uint64  `json:"counts"`
	// Count and Sum are every push and their seconds, failures included.
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum"`
	// Failures counts the pushes that failed (PostgreSQL retries them).
	Failures uint64 `json:"failures"`
	// LastSuccess is when the last successful push ended.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

func fresh() Stats {
	b := Buckets()
	return Stats{Version: Version, Buckets: b, Counts: make([]uint64, len(b))}
}

// Add counts one push that took took and ended at end.
func (s *Stats) Add(took time.Duration, ok bool, end time.Time) {
	if s.Version != Version || !slices.Equal(s.Buckets, Buckets()) || len(s.Counts) != len(s.Buckets) {
		*s = fresh()
	}
	sec := took.Seconds()
	for i, le := range s.Buckets {
		if sec <= le {
			s.Counts[i]++
			break
		}
	}
	s.Count++
	s.Sum += sec
	if ok {
		s.LastSuccess = end
	} else {
		s.Failures++
	}
}

// Cumulative returns the histogram's buckets as Prometheus counts them:
// upper bound → pushes that took at most that long.
func (s Stats) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(s.Buckets))
	var n uint64
	for i, le := range s.Buckets {
		if i < len(s.Counts) {
			n += s.Counts[i]
		}
		out[le] = n
	}
	return out
}

// Record adds one push to the record at path, creating it when missing.
// When the process runs as root (a push run by hand), a new record is
// given to the owner of its directory, so the database account's pushes
// can go on writing it.
func Record(path string, took time.Duration, ok bool, end time.Time) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("wal push record %s: %w", path, err)
	}
	defer f.Close()
	if os.Geteuid() == 0 {
		if st, err := os.Stat(filepath.Dir(path)); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 {
				_ = f.Chown(int(sys.Uid), int(sys.Gid))
			}
		}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("wal push record %s: lock: %w", path, err)
	}
	s, err := decode(f)
	if err != nil {
		s = fresh() // a damaged record starts again: a counter reset
	}
	s.Add(took, ok, end)
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("wal push record %s: %w", path, err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("wal push record %s: %w", path, err)
	}
	return nil
}

// ErrBusy is Read's error when a writer held the lock for longer than a
// reader waits.
var ErrBusy = errors.New("wal push record locked by a writer")

// Read returns the record at path. A missing record is an error for which
// os.IsNotExist holds (no push has been recorded yet).
func Read(path string) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	// A writer holds the lock for one small read and write; a reader on
	// the scrape path waits 100 ms at most.
	for i := 0; ; i++ {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || i == 20 {
			return Stats{}, ErrBusy
		}
		time.Sleep(5 * time.Millisecond) // waiting for the writer's lock, not for a state
	}
	return decode(f)
}

func decode(f *os.File) (Stats, error) {
	b, err := io.ReadAll(io.LimitReader(f, 1<<16))
	if err != nil {
		return Stats{}, err
	}
	if len(b) == 0 {
		return fresh(), nil
	}
	var s Stats
	if err := json.Unmarshal(b, &s); err != nil {
		return Stats{}, fmt.Errorf("wal push record %s: %w", f.Name(), err)
	}
	if s.Version != Version || !slices.Equal(s.Buckets, Buckets()) || len(s.Counts) != len(s.Buckets) {
		return fresh(), nil
	}
	return s, nil
}
