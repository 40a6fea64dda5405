package repoops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgguard/pgguard/internal/backup/wal"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/walspool"
	"github.com/pgguard/pgguard/internal/walstats"
)

// WALPush archives the WAL file at path (archive_command's %p), pushing up
// to Channels - 1 other files PostgreSQL marked ready in parallel. Each
// call, failed or not, leaves its latency and outcome in the record beside
// the data directory (walstats), for the agent's metrics.
func WALPush(ctx context.Context, s reposettings.Settings, path string) (wal.PushResult, error) {
	start := time.Now()
	res, err := walPush(ctx, s, path)
	if s.DataDir != "" {
		// Only counts: a record that cannot be written never fails the push.
		_ = walstats.Record(walstats.Path(s.DataDir), time.Since(start), err == nil, time.Now())
	}
	return res, err
}

func walPush(ctx context.Context, s reposettings.Settings, path string) (wal.PushResult, error) {
	if _, err := os.Stat(path); err != nil {
		return wal.PushResult{}, badinput.Errorf("wal-push %s: %v (archive_command passes %%p, relative to the data directory)", path, err)
	}
	// The agent's WAL stream (or an earlier push ahead) may have stored
	// it already: a checksum, and no repository open (a key derivation).
	// A segment PostgreSQL has just completed may be a few hundred
	// milliseconds from stored: wait for the stream while it runs.
	ok, err := walspool.Archived(ctx, path)
	if err != nil {
		return wal.PushResult{}, err
	} else if ok {
		return wal.PushResult{Spooled: true}, nil
	}
	r, err := s.OpenWAL(ctx)
	if err != nil {
		return wal.PushResult{}, err
	}
	defer r.Close(context.WithoutCancel(ctx))
	return wal.Push(ctx, r, path, wal.PushOptions{Parallel: s.Channels})
}

// WALFetchRequest is restore_command's %f and %p.
type WALFetchRequest struct {
	Name     string // the WAL file name (%f)
	Dest     string // where to write it (%p)
	Prefetch int    // segments to fetch ahead into the spool, 0 to 255 (0: none)
}

// WALFetch writes an archived WAL file to Dest, prefetching the following
// segments. A file the archive does not have is Found false, no error.
func WALFetch(ctx context.Context, s reposettings.Settings, req WALFetchRequest) (wal.FetchResult, error) {
	return WALFetchFrom(ctx, s, req, nil)
}

// WALFetchFrom is WALFetch with a repository the caller keeps open: open
// returns it, and WALFetchFrom does not close it (the agent serving
// restore_command opens the repository once). With open nil the
// repository is opened when needed and closed.
func WALFetchFrom(ctx context.Context, s reposettings.Settings, req WALFetchRequest, open func(context.Context) (*repo.Repository, error)) (wal.FetchResult, error) {
	if req.Prefetch < 0 || req.Prefetch > 255 {
		return wal.FetchResult{}, badinput.Errorf("--prefetch %d: use 0 to 255", req.Prefetch)
	}
	if req.Name != filepath.Base(req.Name) || req.Name == "" {
		return wal.FetchResult{}, badinput.Errorf("wal-fetch: %q is not a WAL file name (restore_command passes %%f)", req.Name)
	}
	if local(req) {
		return wal.FetchResult{Found: true}, nil
	}
	if missing(ctx, s, req) {
		return wal.FetchResult{}, nil
	}
	var r *repo.Repository
	var err error
	if open != nil {
		r, err = open(ctx)
	} else if r, err = s.OpenWAL(ctx); err == nil {
		defer r.Close(context.WithoutCancel(ctx))
	}
	if err != nil {
		return wal.FetchResult{}, err
	}
	fo := wal.FetchOptions{Prefetch: req.Prefetch, NoPrefetch: req.Prefetch == 0}
	if s.Config != nil && s.Config.Disk.Critical != "" {
		// The look-ahead stops before the volume reaches disk.critical
		// (a percentage needs the volume's size).
		var st syscall.Statfs_t
		if syscall.Statfs(filepath.Dir(req.Dest), &st) == nil {
			if min, err := config.Threshold(s.Config.Disk.Critical, st.Blocks*uint64(st.Bsize)); err == nil {
				fo.MinFree = min
			}
		}
	}
	return wal.Fetch(ctx, r, req.Name, req.Dest, fo)
}

// local serves a timeline history file from pg_wal when it is there: the
// standby received it from its primary, byte for byte what that primary
// archived, and a promotion reads the current timeline's history from
// restore_command first, waiting for a repository open.
func local(req WALFetchRequest) bool {
	if !strings.HasSuffix(req.Name, ".history") {
		return false
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(req.Dest), req.Name))
	if err != nil || len(data) == 0 {
		return false
	}
	tmp := req.Dest + ".pgguard-tmp"
	if os.WriteFile(tmp, data, 0o600) != nil || os.Rename(tmp, req.Dest) != nil {
		_ = os.Remove(tmp)
		return false
	}
	return true
}

// missing reports whether the archive surely lacks the file asked for,
// from one look at the storage, before the repository is opened (a key
// derivation): PostgreSQL asks for files that do not exist at every
// promotion and start (the next timelines' history files), and a "no"
// must be quick — a promotion waits for it.
func missing(ctx context.Context, s reposettings.Settings, req WALFetchRequest) bool {
	obj, err := repo.WALObject(req.Name)
	if err != nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(req.Dest), wal.SpoolName, "fetch", req.Name)); err == nil {
		return false // prefetched: Fetch serves it
	}
	be, err := s.Backend(ctx)
	if err != nil {
		return false
	}
	if _, err = be.Stat(ctx, obj); !storage.IsNotExist(err) {
		return false
	}
	if !lsn.IsSegmentName(req.Name) || !wal.TailAllowed(req.Dest) {
		return true
	}
	// The WAL stream's tail of the segment, when it has one on the last
	// timeline and the asking server may have it, is served instead
	// (wal.Fetch).
	if _, err := be.Stat(ctx, obj+repo.TailSuffix); storage.IsNotExist(err) {
		return true
	} else if err != nil {
		return false
	}
	return storage.IsNotExist(repo.HasNoLaterTimeline(ctx, be, req.Name))
}
