// Package metrics is what an agent exports to Prometheus at /metrics: the
// metric names, help texts and labels, and a Collector that turns what the
// agent already knows into samples at the moment it is scraped. The agent
// hands it a Snapshot — its last loop's observation, the counters of the
// events it recorded, and the slow figures (backups, repository size,
// jobs) it refreshes in the background — and the Collector only converts,
// so nothing is computed while nobody scrapes.
//
// It must never do I/O, and never put a secret, a URL, an id or an error
// text into a sample or a label: label values are node names and fixed
// kinds (roles, job kinds, history actions, volumes).
package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgguard/pgguard/internal/api"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/walstats"
)

// Source is what the Collector asks at each scrape. Snapshot must be
// cheap: it copies what the agent holds, it does not go and look.
type Source interface {
	Snapshot() Snapshot
}

// Snapshot is everything one scrape reports.
type Snapshot struct {
	Now      time.Time
	Settings Settings
	// Loop is the agent's last loop (nil before the first).
	Loop *Loop
	// Volumes are the data directory's volume and pg_wal's, when another.
	Volumes []Volume
	// Archive is nil when this node does not archive WAL.
	Archive *Archive
	// Repository is nil without a repository or before its first read;
	// Jobs nil before the first read of the store's jobs.
	Repository *Repository
	Jobs       *Jobs
}

// Settings are the node's configured limits.
type Settings struct {
	TTL, SafetyMargin time.Duration
	// MaxLagOnFailover is ha.maximum_lag_on_failover: a standby further
	// behind is no failover candidate.
	MaxLagOnFailover int64
	NoLoadBalance    bool
}

// Loop is what the agent's last loop saw, with the lease as the agent
// holds it now.
type Loop struct {
	At  time.Time
	Obs ha.Observation
	// WritableUntil is the fencing deadline of the lease this node holds;
	// LastRenew its last renewal. Both zero when it holds none.
	WritableUntil, LastRenew time.Time
}

// Volume is one file system the node writes to.
type Volume struct {
	Name       string // "data", "wal"
	Free, Size uint64
	// Warn and Critical are disk.warn and disk.critical in free bytes (0:
	// not set).
	Warn, Critical uint64
}

// Archive is the state of WAL archiving on this node.
type Archive struct {
	// Ready counts the segments PostgreSQL waits to archive (.ready files
	// in pg_wal/archive_status); OldestReady is the oldest one's mtime.
	Ready       int
	OldestReady time.Time
	// Push is what wal-push recorded (nil: nothing yet).
	Push *walstats.Stats
}

// Collector reports a Source's snapshots and a Counters' totals.
type Collector struct {
	src      Source
	counters *Counters
	d        descs
}

// NewCollector makes the collector; register it in a private registry
// (wrapped with the cluster and node labels).
func NewCollector(src Source, counters *Counters) *Collector {
	return &Collector{src: src, counters: counters, d: newDescs()}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
}

// Collect sends one scrape's samples.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	e := emitter{ch: ch}
	c.settings(e, s)
	if s.Loop != nil {
		c.loop(e, s)
	}
	for _, v := range s.Volumes {
		c.volume(e, v)
	}
	if s.Archive != nil {
		c.archive(e, s.Now, *s.Archive)
	}
	if s.Repository != nil {
		c.repository(e, s.Now, *s.Repository)
	}
	if s.Jobs != nil {
		c.jobs(e, *s.Jobs)
	}
	c.counters.collect(e, c.d)
}

// emitter sends const metrics.
type emitter struct{ ch chan<- prometheus.Metric }

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (e emitter) counter(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *Collector) settings(e emitter, s Snapshot) {
	e.gauge(c.d.leaseTTL, s.Settings.TTL.Seconds())
	e.gauge(c.d.leaseFence, (s.Settings.TTL - s.Settings.SafetyMargin).Seconds())
	e.gauge(c.d.lagLimit, float64(s.Settings.MaxLagOnFailover))
}

func (c *Collector) loop(e emitter, s Snapshot) {
	l, now := *s.Loop, s.Now
	o := l.Obs
	n := api.NodeFrom(o, l.At, l.WritableUntil, s.Settings.NoLoadBalance)
	role := n.Role(now)
	// What the health endpoints call a node (api.Node.Role).
	for _, r := range [...]string{"primary", "replica", "demoted", "stopped"} {
		e.gauge(c.d.role, flag(r == role), r)
	}
	held := !l.LastRenew.IsZero()
	e.gauge(c.d.leaseHeld, flag(held))
	if held {
		e.gauge(c.d.leaseAge, now.Sub(l.LastRenew).Seconds())
	}
	e.gauge(c.d.loopAge, now.Sub(l.At).Seconds())
	e.gauge(c.d.storeOK, flag(o.StoreOK))
	e.gauge(c.d.running, flag(o.Local.Running))
	e.gauge(c.d.healthy, flag(o.Local.Running && o.Local.Healthy))
	if o.Local.Running && o.Local.Timeline > 0 {
		e.gauge(c.d.timeline, float64(o.Local.Timeline))
	}
	if o.Local.Running && o.Local.InRecovery {
		e.gauge(c.d.lagBytes, float64(n.LagBytes))
		if n.LagSeconds >= 0 {
			e.gauge(c.d.lagSeconds, n.LagSeconds)
		}
		e.gauge(c.d.streaming, flag(n.Streaming))
		e.gauge(c.d.syncStandby, flag(n.Sync))
	}

	r := status.Build("", o.Cluster, s.Settings.TTL, now)
	e.gauge(c.d.paused, flag(r.Paused))
	e.gauge(c.d.split, float64(len(SplitMembers(r))))
	if held && r.Leader == o.Self {
		c.standbys(e, r, o.Peers)
	}
}

// SplitMembers names the members that say they run as primary while
// another member holds the leader lease (stale records left out: a dead
// primary's last word is not a split).
func SplitMembers(r status.Report) []string {
	var out []string
	if r.Leader == "" {
		return nil
	}
	for _, m := range r.Members {
		if m.Role == string(ha.RolePrimary) && !m.Leader && !m.Stale {
			out = append(out, m.Name)
		}
	}
	return out
}

// standbys reports every standby as the primary holding the lease sees
// it: what `ctl status` shows (lag against the primary's published
// position, its pg_stat_replication row). A peer whose record is gone
// from the store (its agent dead longer than its lease) is reported as
// not streaming, so that it does not just vanish.
func (c *Collector) standbys(e emitter, r status.Report, peers []string) {
	for _, p := range peers {
		if !slices.ContainsFunc(r.Members, func(m status.Member) bool { return m.Name == p }) {
			e.gauge(c.d.standbyStreaming, 0, p)
		}
	}
	for _, m := range r.Members {
		if m.Leader || m.Role == string(ha.RoleWitness) {
			continue
		}
		e.gauge(c.d.standbyStreaming, flag(m.Streaming), m.Name)
		if m.Role != string(ha.RoleStandby) {
			continue
		}
		e.gauge(c.d.standbyLagBytes, float64(m.LagBytes), m.Name)
		if m.SentLSN != "" || m.SyncState != "" {
			e.gauge(c.d.standbyLagSeconds, m.LagSeconds, m.Name)
		}
		if m.SyncState != "" {
			for _, st := range [...]string{"async", "potential", "sync", "quorum"} { // pg_stat_replication's
				e.gauge(c.d.standbySync, flag(st == m.SyncState), m.Name, st)
			}
		}
	}
}

func (c *Collector) volume(e emitter, v Volume) {
	e.gauge(c.d.diskFree, float64(v.Free), v.Name)
	e.gauge(c.d.diskSize, float64(v.Size), v.Name)
	if v.Warn > 0 {
		e.gauge(c.d.diskWarn, float64(v.Warn), v.Name)
	}
	if v.Critical > 0 {
		e.gauge(c.d.diskCritical, float64(v.Critical), v.Name)
	}
}

func (c *Collector) archive(e emitter, now time.Time, a Archive) {
	e.gauge(c.d.archiveReady, float64(a.Ready))
	age := 0.0
	if a.Ready > 0 && !a.OldestReady.IsZero() {
		age = max(now.Sub(a.OldestReady).Seconds(), 0)
	}
	e.gauge(c.d.archiveReadyAge, age)
	if p := a.Push; p != nil {
		e.ch <- prometheus.MustNewConstHistogram(c.d.pushLatency, p.Count, p.Sum, p.Cumulative())
		e.counter(c.d.pushFailures, float64(p.Failures))
		if !p.LastSuccess.IsZero() {
			e.gauge(c.d.pushLastSuccess, unix(p.LastSuccess))
		}
	}
}
