package agent

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgguard/pgguard/internal/backup"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/metrics"
	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/walstats"
)

// How often the slow figures are read: the store's jobs and runs and the
// repository's backups every minute (and after a job run of this node
// ends, but not within figuresGap of the last read), the repository's size
// every five minutes (a listing of every object).
const (
	figuresEvery = time.Minute
	figuresGap   = 10 * time.Second
	repoSizeAge  = 5 * time.Minute
)

// agentMetrics is the agent's side of /metrics: the metrics.Source that
// copies what the agent holds at each scrape, the counters fed by the
// history events it records and the runs it executes, and the reader of
// the slow figures. That reader starts at the first scrape: an agent
// nobody scrapes never lists its repository for metrics.
type agentMetrics struct {
	a        *Agent
	counters *metrics.Counters
	repo     atomic.Pointer[metrics.Repository]
	jobs     atomic.Pointer[metrics.Jobs]
	// ended wakes the reader when a job run of this node ended.
	ended chan struct{}

	start  sync.Once
	ctx    context.Context // the reader's lifetime, ended by close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// The reader's own state: the backups whose manifest it read, the
	// last repository error (logged when it changes).
	known   map[string]repoBackup
	repoErr string
}

// repoBackup is one manifest read, with its cluster's system identifier.
type repoBackup struct {
	system uint64
	b      metrics.Backup
}

func newAgentMetrics(a *Agent) *agentMetrics {
	ctx, cancel := context.WithCancel(context.Background())
	return &agentMetrics{a: a, counters: metrics.NewCounters(), ended: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		known: map[string]repoBackup{}}
}

// handler serves the metrics from a registry of their own (the embedded
// etcd's metrics stay in the default one), with Go's and the process's.
func (m *agentMetrics) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labels := prometheus.Labels{"cluster": m.a.cfg.Cluster, "node": m.a.cfg.Name}
	prometheus.WrapRegistererWith(labels, reg).MustRegister(metrics.NewCollector(m, m.counters))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.a.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// close stops the figures' reader.
func (m *agentMetrics) close() {
	if m == nil {
		return
	}
	m.cancel()
	m.wg.Wait()
}

// event counts a history event; a promotion is timed from the moment
// this node saw the leader key gone (still in the memory: the step is
// recorded in the loop that promoted, before the next observation).
func (m *agentMetrics) event(e dcs.Event) {
	var leaderless time.Time
	if e.Action == ha.Promote {
		m.a.mu.Lock()
		leaderless = m.a.mem.LeaderLostAt
		m.a.mu.Unlock()
	}
	m.counters.Event(e, leaderless)
}

// runEnded counts a run this node executed and has the figures read again.
func (m *agentMetrics) runEnded(kind jobs.Kind, status jobs.Status) {
	if m == nil {
		return
	}
	m.counters.JobRun(kind, status)
	select {
	case m.ended <- struct{}{}:
	default:
	}
}

// Snapshot is what a scrape reports: copies of what the agent holds, and
// of its disk and archive status (a few system calls).
func (m *agentMetrics) Snapshot() metrics.Snapshot {
	m.start.Do(func() {
		m.wg.Add(1)
		go m.readFigures()
	})
	a := m.a
	h := a.cfg.HA
	s := metrics.Snapshot{Now: time.Now(), Settings: metrics.Settings{TTL: h.TTL.D(), SafetyMargin: h.SafetyMargin.D(),
		MaxLagOnFailover: h.MaximumLagOnFailover, NoLoadBalance: h.NoLoadBalance}}
	if v := a.api.last.Load(); v != nil {
		l := &metrics.Loop{At: v.at, Obs: v.obs}
		a.mu.Lock()
		if a.mem.HoldsLeader && !a.mem.LastRenew.IsZero() {
			l.LastRenew = a.mem.LastRenew
			l.WritableUntil = a.mem.LastRenew.Add(h.TTL.D() - h.SafetyMargin.D())
		}
		a.mu.Unlock()
		s.Loop = l
	}
	s.Volumes = a.volumes()
	if a.cfg.Archive.Enabled {
		s.Archive = archiveState(a.cfg.Postgres.DataDir)
	}
	s.Repository, s.Jobs = m.repo.Load(), m.jobs.Load()
	return s
}

// volumes measures the data directory's volume and pg_wal's when it is
// another, against disk.warn and disk.critical.
func (a *Agent) volumes() []metrics.Volume {
	data := a.cfg.Postgres.DataDir
	dirs := []struct{ name, path string }{{"data", data}}
	if wal, err := filepath.EvalSymlinks(filepath.Join(data, "pg_wal")); err == nil {
		dirs = append(dirs, struct{ name, path string }{"wal", wal})
	}
	var out []metrics.Volume
	seen := map[uint64]bool{}
	for _, d := range dirs {
		var st syscall.Stat_t
		var fs syscall.Statfs_t
		if syscall.Stat(d.path, &st) != nil || syscall.Statfs(d.path, &fs) != nil || fs.Blocks == 0 || seen[st.Dev] {
			continue
		}
		seen[st.Dev] = true
		v := metrics.Volume{Name: d.name, Free: fs.Bavail * uint64(fs.Bsize), Size: fs.Blocks * uint64(fs.Bsize)}
		v.Warn, _ = config.Threshold(a.cfg.Disk.Warn, v.Size)
		v.Critical, _ = config.Threshold(a.cfg.Disk.Critical, v.Size)
		out = append(out, v)
	}
	return out
}

// archiveState counts the WAL files PostgreSQL waits to archive and reads
// what wal-push recorded. PostgreSQL, not the agent, runs archive_command:
// the .ready files are its queue, the record the pushes' own account.
func archiveState(dataDir string) *metrics.Archive {
	a := &metrics.Archive{}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "pg_wal", "archive_status"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".ready") {
			continue
		}
		a.Ready++
		if fi, err := e.Info(); err == nil && (a.OldestReady.IsZero() || fi.ModTime().Before(a.OldestReady)) {
			a.OldestReady = fi.ModTime()
		}
	}
	if st, err := walstats.Read(walstats.Path(dataDir)); err == nil {
		a.Push = &st
	}
	return a
}

// readFigures reads the slow figures at once, then every figuresEvery and
// after each job run of this node, until close.
func (m *agentMetrics) readFigures() {
	defer m.wg.Done()
	t := time.NewTicker(figuresEvery)
	defer t.Stop()
	for {
		m.readJobs(m.ctx)
		if m.a.cfg.Repository.URL != "" {
			m.readRepository(m.ctx)
		}
		last := time.Now()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.ended:
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(figuresGap - time.Since(last)):
			}
		}
	}
}

func (m *agentMetrics) readJobs(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := time.Now()
	list, err := m.a.store.Jobs(sctx)
	var runs map[string][]jobs.Run
	if err == nil {
		runs, err = m.a.store.Runs(sctx)
	}
	if err != nil {
		m.a.log.Debug("metrics: jobs not read", "err", err)
		j := metrics.Jobs{ReadAt: now}
		if prev := m.jobs.Load(); prev != nil {
			j.ByKind = prev.ByKind
		}
		m.jobs.Store(&j)
		return
	}
	m.jobs.Store(&metrics.Jobs{ReadAt: now, OK: true, ByKind: metrics.SummarizeJobs(list, runs, now)})
}

// readRepository lists the repository's backups, reading only the
// manifests it has not read before, and measures its size every
// repoSizeAge. It opens the repository without its block index (as
// wal-push does) and takes no lock.
func (m *agentMetrics) readRepository(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	now := time.Now()
	next := metrics.Repository{ReadAt: now}
	if prev := m.repo.Load(); prev != nil {
		next.Backups, next.Size, next.SizeAt = prev.Backups, prev.Size, prev.SizeAt
	}
	err := m.listBackups(rctx, &next)
	if err == nil && now.Sub(next.SizeAt) >= repoSizeAge {
		err = m.measureRepository(rctx, &next)
	}
	next.OK = err == nil
	if why := errText(err); why != m.repoErr {
		m.repoErr = why
		if err != nil {
			m.a.log.Warn("metrics: repository not read (the figures of the last read stand)", "err", err)
		} else {
			m.a.log.Info("metrics: repository read again")
		}
	}
	m.repo.Store(&next)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (m *agentMetrics) listBackups(ctx context.Context, next *metrics.Repository) error {
	s, err := m.a.repository()
	if err != nil {
		return err
	}
	r, err := s.OpenWAL(ctx)
	if err != nil {
		return err
	}
	defer r.Close(context.WithoutCancel(ctx))
	ids, err := r.ListBackups(ctx)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(ids))
	for _, id := range ids {
		listed[id] = true
		if _, ok := m.known[id]; ok {
			continue
		}
		man, err := r.LoadManifest(ctx, id)
		if storage.IsNotExist(err) {
			continue // pruned since the listing
		}
		if err != nil {
			return err
		}
		sum := backup.Summarize(man.Header)
		size := sum.Size
		if size == 0 {
			size = sum.BytesRead // a logical backup: the dump
		}
		m.known[id] = repoBackup{system: sum.SystemID, b: metrics.Backup{Kind: string(sum.Kind), Start: sum.StartTime, Stop: sum.StopTime,
			Size: size, Stored: sum.StoredSize}}
	}
	// Backups of this cluster only: a repository may keep another's.
	var system uint64
	if v := m.a.api.last.Load(); v != nil {
		system, _ = strconv.ParseUint(v.obs.Cluster.SystemID, 10, 64)
	}
	list := make([]metrics.Backup, 0, len(m.known))
	for id, k := range m.known {
		switch {
		case !listed[id]:
			delete(m.known, id)
		case system == 0 || k.system == system:
			list = append(list, k.b)
		}
	}
	next.Backups = metrics.SummarizeBackups(list)
	return nil
}

func (m *agentMetrics) measureRepository(ctx context.Context, next *metrics.Repository) error {
	s, err := m.a.repository()
	if err != nil {
		return err
	}
	be, err := s.Backend(ctx)
	if err != nil {
		return err
	}
	var size int64
	if err := be.List(ctx, "", func(fi storage.FileInfo) error {
		size += fi.Size
		return nil
	}); err != nil {
		return err
	}
	next.Size, next.SizeAt = size, time.Now()
	return nil
}

// restoreServed counts a restore_command call the agent answered.
func (m *agentMetrics) restoreServed(answer string, err error) {
	if err != nil {
		answer = "error"
	}
	m.counters.RestoreCommand(answer)
}
