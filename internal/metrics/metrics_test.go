package metrics_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/metrics"
	"github.com/pgguard/pgguard/internal/testcluster"
	"github.com/pgguard/pgguard/internal/walstats"
)

// fakeSource hands the collector a fixed snapshot.
type fakeSource struct{ s metrics.Snapshot }

func (f fakeSource) Snapshot() metrics.Snapshot { return f.s }

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func settings() metrics.Settings {
	return metrics.Settings{TTL: 10 * time.Second, SafetyMargin: 2 * time.Second, MaxLagOnFailover: 16 << 20}
}

// threeNodes is the store as n1, the primary holding the lease, sees it:
// n2 a streaming synchronous standby, n3 an async standby 3 MiB behind
// (and n4, a peer whose record expired, is not there at all).
func threeNodes() ha.Cluster {
	const head = lsn.LSN(0x5000000)
	return ha.Cluster{
		SystemID: "7300000000000000001", Revision: 42,
		Leader: &ha.Leader{Name: "n1", Revision: 40},
		Config: ha.ClusterConfig{Mode: ha.ModeSync},
		Sync:   &ha.SyncState{Leader: "n1", Members: []string{"n2"}},
		Members: map[string]ha.Member{
			"n1": {Name: "n1", Role: ha.RolePrimary, State: "running", Healthy: true, Timeline: 3, WalLSN: head, UpdatedAt: now.Add(-time.Second),
				Replication: map[string]ha.Replica{
					"n2": {State: "streaming", SyncState: "sync", SentLSN: head, FlushLSN: head, ReplayLSN: head, ReplayLagSeconds: 0.004},
					"n3": {State: "streaming", SyncState: "async", SentLSN: head - 3<<20, ReplayLSN: head - 3<<20, ReplayLagSeconds: 2.5},
				}},
			"n2": {Name: "n2", Role: ha.RoleStandby, State: "running", Healthy: true, Timeline: 3, ReceivedLSN: head, ReplayedLSN: head, Streaming: true, UpdatedAt: now.Add(-time.Second)},
			"n3": {Name: "n3", Role: ha.RoleStandby, State: "running", Healthy: true, Timeline: 3, ReceivedLSN: head - 3<<20, ReplayedLSN: head - 3<<20, Streaming: true, UpdatedAt: now.Add(-time.Second)},
		},
	}
}

func primaryLoop() *metrics.Loop {
	renewed := now.Add(-1500 * time.Millisecond)
	return &metrics.Loop{
		At: now.Add(-300 * time.Millisecond), WritableUntil: renewed.Add(8 * time.Second), LastRenew: renewed,
		Obs: ha.Observation{Self: "n1", Peers: []string{"n1", "n2", "n3", "n4"}, StoreOK: true, Cluster: threeNodes(), Settings: ha.Settings{TTL: 10 * time.Second, LoopInterval: time.Second},
			Local: ha.Local{Running: true, Healthy: true, Timeline: 3, WalLSN: 0x5000000}},
	}
}

func standbyLoop(self string) *metrics.Loop {
	c := threeNodes()
	m := c.Members[self]
	return &metrics.Loop{
		At: now.Add(-300 * time.Millisecond),
		Obs: ha.Observation{Self: self, StoreOK: true, Cluster: c, Settings: ha.Settings{TTL: 10 * time.Second, LoopInterval: time.Second},
			Local: ha.Local{Running: true, Healthy: true, InRecovery: true, Streaming: true, Timeline: 3, ReceivedLSN: m.ReceivedLSN, ReplayedLSN: m.ReplayedLSN}},
	}
}

func collect(t *testing.T, s metrics.Snapshot, counters *metrics.Counters) *metrics.Collector {
	t.Helper()
	if counters == nil {
		counters = metrics.NewCounters()
	}
	return metrics.NewCollector(fakeSource{s}, counters)
}

func compare(t *testing.T, c prometheus.Collector, want string, names ...string) {
	t.Helper()
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestThePrimaryHoldingTheLeaseReportsItsRoleLeaseAndEachStandby(t *testing.T) {
	c := collect(t, metrics.Snapshot{Now: now, Settings: settings(), Loop: primaryLoop()}, nil)
	compare(t, c, `
# HELP pgguard_role 1 for the role this node has now (what the health endpoints say: primary holding the lease, replica, demoted — running read-write without the lease —, stopped), 0 for the others.
# TYPE pgguard_role gauge
pgguard_role{role="demoted"} 0
pgguard_role{role="primary"} 1
pgguard_role{role="replica"} 0
pgguard_role{role="stopped"} 0
# HELP pgguard_leader_lease_age_seconds Time since this node last renewed the leader lease it holds (only while it holds one).
# TYPE pgguard_leader_lease_age_seconds gauge
pgguard_leader_lease_age_seconds 1.5
# HELP pgguard_leader_lease_held 1 while this node holds the leader lease.
# TYPE pgguard_leader_lease_held gauge
pgguard_leader_lease_held 1
# HELP pgguard_leader_lease_ttl_seconds The leader lease's time to live (ha.ttl).
# TYPE pgguard_leader_lease_ttl_seconds gauge
pgguard_leader_lease_ttl_seconds 10
# HELP pgguard_timeline The local PostgreSQL's timeline.
# TYPE pgguard_timeline gauge
pgguard_timeline 3
# HELP pgguard_split_members Members that publish themselves as a running primary while another member holds the leader lease, as this node sees the store.
# TYPE pgguard_split_members gauge
pgguard_split_members 0
`, "pgguard_role", "pgguard_leader_lease_held", "pgguard_leader_lease_age_seconds", "pgguard_leader_lease_ttl_seconds", "pgguard_timeline", "pgguard_split_members")
	compare(t, c, `
# HELP pgguard_standby_lag_bytes Each standby's WAL position behind the primary's, as the primary holding the lease sees it (ctl status's LAG).
# TYPE pgguard_standby_lag_bytes gauge
pgguard_standby_lag_bytes{standby="n2"} 0
pgguard_standby_lag_bytes{standby="n3"} 3.145728e+06
# HELP pgguard_standby_lag_seconds Each standby's replay lag from the primary's pg_stat_replication (primary holding the lease only).
# TYPE pgguard_standby_lag_seconds gauge
pgguard_standby_lag_seconds{standby="n2"} 0.004
pgguard_standby_lag_seconds{standby="n3"} 2.5
# HELP pgguard_standby_streaming 1 when the member streams from the primary holding the lease, 0 when it does not (stopped, unreachable, not connected).
# TYPE pgguard_standby_streaming gauge
pgguard_standby_streaming{standby="n2"} 1
pgguard_standby_streaming{standby="n3"} 1
pgguard_standby_streaming{standby="n4"} 0
# HELP pgguard_standby_sync_state 1 for the standby's sync_state in the primary's pg_stat_replication, 0 for the others.
# TYPE pgguard_standby_sync_state gauge
pgguard_standby_sync_state{standby="n2",state="async"} 0
pgguard_standby_sync_state{standby="n2",state="potential"} 0
pgguard_standby_sync_state{standby="n2",state="quorum"} 0
pgguard_standby_sync_state{standby="n2",state="sync"} 1
pgguard_standby_sync_state{standby="n3",state="async"} 1
pgguard_standby_sync_state{standby="n3",state="potential"} 0
pgguard_standby_sync_state{standby="n3",state="quorum"} 0
pgguard_standby_sync_state{standby="n3",state="sync"} 0
`, "pgguard_standby_lag_bytes", "pgguard_standby_lag_seconds", "pgguard_standby_streaming", "pgguard_standby_sync_state")
	// A standby's own view is not reported by a primary.
	if n := testutil.CollectAndCount(c, "pgguard_replication_lag_bytes"); n != 0 {
		t.Errorf("the primary reports %d pgguard_replication_lag_bytes samples, want none", n)
	}
}

func TestAStandbyReportsItsOwnLagAndSyncStateAndNoOneElses(t *testing.T) {
	c := collect(t, metrics.Snapshot{Now: now, Settings: settings(), Loop: standbyLoop("n3")}, nil)
	compare(t, c, `
# HELP pgguard_replication_lag_bytes This standby's replay position behind the primary's last published WAL position (what /replica?lag= checks).
# TYPE pgguard_replication_lag_bytes gauge
pgguard_replication_lag_bytes 3.145728e+06
# HELP pgguard_replication_lag_seconds This standby's replay lag as the primary's pg_stat_replication reports it (absent when the primary does not).
# TYPE pgguard_replication_lag_seconds gauge
pgguard_replication_lag_seconds 2.5
# HELP pgguard_replication_streaming 1 while this standby's WAL receiver streams from its upstream.
# TYPE pgguard_replication_streaming gauge
pgguard_replication_streaming 1
# HELP pgguard_sync_standby 1 when this standby is in the cluster's synchronous set.
# TYPE pgguard_sync_standby gauge
pgguard_sync_standby 0
# HELP pgguard_leader_lease_held 1 while this node holds the leader lease.
# TYPE pgguard_leader_lease_held gauge
pgguard_leader_lease_held 0
`, "pgguard_replication_lag_bytes", "pgguard_replication_lag_seconds", "pgguard_replication_streaming", "pgguard_sync_standby", "pgguard_leader_lease_held")
	if sample(t, c, "pgguard_role", "role", "replica") != 1 {
		t.Error("n3 is not reported as a replica")
	}
	for _, name := range []string{"pgguard_standby_lag_bytes", "pgguard_leader_lease_age_seconds"} {
		if n := testutil.CollectAndCount(c, name); n != 0 {
			t.Errorf("a standby reports %d %s samples, want none", n, name)
		}
	}
	c = collect(t, metrics.Snapshot{Now: now, Settings: settings(), Loop: standbyLoop("n2")}, nil)
	compare(t, c, `
# HELP pgguard_sync_standby 1 when this standby is in the cluster's synchronous set.
# TYPE pgguard_sync_standby gauge
pgguard_sync_standby 1
`, "pgguard_sync_standby")
}

// A primary whose lease has run out (the fencing deadline passed) is no
// longer reported as primary, whatever its PostgreSQL still does.
func TestAPrimaryPastItsFencingDeadlineIsDemoted(t *testing.T) {
	l := primaryLoop()
	l.WritableUntil = now.Add(-time.Millisecond)
	c := collect(t, metrics.Snapshot{Now: now, Settings: settings(), Loop: l}, nil)
	if sample(t, c, "pgguard_role", "role", "demoted") != 1 || sample(t, c, "pgguard_role", "role", "primary") != 0 {
		t.Error("a primary past its fencing deadline is not reported demoted")
	}
}

func TestSplitCountsFreshPrimariesBesideTheLeaseHolder(t *testing.T) {
	cases := []struct {
		name string
		n3   ha.Member
		want float64
	}{
		{"a member publishing primary while n1 holds the lease is a split", ha.Member{Name: "n3", Role: ha.RolePrimary, State: "running", UpdatedAt: now.Add(-time.Second)}, 1},
		{"a dead primary's stale record is not a split", ha.Member{Name: "n3", Role: ha.RolePrimary, State: "running", UpdatedAt: now.Add(-time.Minute)}, 0},
		{"a standby is not a split", ha.Member{Name: "n3", Role: ha.RoleStandby, State: "running", UpdatedAt: now.Add(-time.Second)}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := standbyLoop("n2")
			l.Obs.Cluster.Members["n3"] = tc.n3
			c := collect(t, metrics.Snapshot{Now: now, Settings: settings(), Loop: l}, nil)
			if got := sample(t, c, "pgguard_split_members"); got != tc.want {
				t.Fatalf("pgguard_split_members = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBeforeTheFirstLoopOnlyTheSettingsAndCountersAreReported(t *testing.T) {
	c := collect(t, metrics.Snapshot{Now: now, Settings: settings()}, nil)
	for _, name := range []string{"pgguard_role", "pgguard_timeline", "pgguard_loop_age_seconds"} {
		if n := testutil.CollectAndCount(c, name); n != 0 {
			t.Errorf("%d %s samples before the first loop, want none", n, name)
		}
	}
	compare(t, c, `
# HELP pgguard_leader_lease_fence_after_seconds Lease age at which a primary fences itself (ha.ttl - ha.safety_margin).
# TYPE pgguard_leader_lease_fence_after_seconds gauge
pgguard_leader_lease_fence_after_seconds 8
# HELP pgguard_failovers_total Promotions of this node that were failovers (an election or an operator's takeover).
# TYPE pgguard_failovers_total counter
pgguard_failovers_total 0
`, "pgguard_leader_lease_fence_after_seconds", "pgguard_failovers_total")
}

func TestPromotionsFencesAndJobRunsAreCounted(t *testing.T) {
	counters := metrics.NewCounters()
	lost := now.Add(-4 * time.Second)
	counters.Event(dcs.Event{Time: now.Add(-2 * time.Second), Action: ha.Promote, Reason: ha.PromoteElection, Result: "ok in 120ms"}, lost)
	counters.Event(dcs.Event{Time: now, Action: ha.Promote, Reason: ha.PromoteSwitchover, Result: "ok in 80ms"}, now.Add(-1500*time.Millisecond))
	counters.Event(dcs.Event{Time: now, Action: ha.Promote, Reason: ha.PromoteTakeover, Result: "failed: promote: timeout"}, lost)
	counters.Event(dcs.Event{Time: now, Action: ha.Promote, Reason: ha.PromoteTakeover, Result: "ok in 1s"}, time.Time{})
	counters.Event(dcs.Event{Time: now, Action: ha.Fence, Reason: "watchdog: no lease renewal for 8s", Result: "ok"}, time.Time{})
	counters.Event(dcs.Event{Time: now, Action: ha.EventLeaderLost, Target: "n1", Result: "observed"}, time.Time{})
	counters.JobRun(jobs.KindDrill, jobs.Failed)
	counters.JobRun(jobs.KindFull, jobs.Succeeded)
	counters.JobRun(jobs.KindFull, jobs.Succeeded)
	counters.RestoreCommand("found")
	counters.RestoreCommand("missing")
	counters.RestoreCommand("missing")
	c := collect(t, metrics.Snapshot{Now: now, Settings: settings()}, counters)
	compare(t, c, `
# HELP pgguard_failovers_total Promotions of this node that were failovers (an election or an operator's takeover).
# TYPE pgguard_failovers_total counter
pgguard_failovers_total 2
# HELP pgguard_switchovers_total Promotions of this node by a switchover.
# TYPE pgguard_switchovers_total counter
pgguard_switchovers_total 1
# HELP pgguard_last_failover_duration_seconds From this node seeing the leader key gone to the end of its last failover promotion.
# TYPE pgguard_last_failover_duration_seconds gauge
pgguard_last_failover_duration_seconds 2
# HELP pgguard_last_switchover_duration_seconds From this node seeing the old primary's leader key released to the end of its last switchover promotion.
# TYPE pgguard_last_switchover_duration_seconds gauge
pgguard_last_switchover_duration_seconds 1.5
# HELP pgguard_fences_total Fencing events of this node: its primary stopped because its lease was about to expire or another took over.
# TYPE pgguard_fences_total counter
pgguard_fences_total 1
# HELP pgguard_job_runs_total Job runs this agent executed, by kind and result.
# TYPE pgguard_job_runs_total counter
pgguard_job_runs_total{kind="drill",result="failed"} 1
pgguard_job_runs_total{kind="full",result="succeeded"} 2
# HELP pgguard_events_total History events this agent recorded, by action.
# TYPE pgguard_events_total counter
pgguard_events_total{action="fence"} 1
pgguard_events_total{action="leader-lost"} 1
pgguard_events_total{action="promote"} 4
# HELP pgguard_restore_command_served_total restore_command calls this agent answered for its PostgreSQL (pgguard-wal asks the agent, which keeps the repository open), by answer: found, missing (the archive lacks the file), error (pgguard-wal then ran pgguard).
# TYPE pgguard_restore_command_served_total counter
pgguard_restore_command_served_total{answer="found"} 1
pgguard_restore_command_served_total{answer="missing"} 2
`, "pgguard_failovers_total", "pgguard_switchovers_total", "pgguard_last_failover_duration_seconds", "pgguard_last_switchover_duration_seconds",
		"pgguard_fences_total", "pgguard_job_runs_total", "pgguard_events_total", "pgguard_restore_command_served_total")
}

func TestDiskArchiveRepositoryAndJobFigures(t *testing.T) {
	push := &walstats.Stats{}
	push.Add(80*time.Millisecond, true, now.Add(-10*time.Second))
	push.Add(3*time.Second, false, now)
	s := metrics.Snapshot{Now: now, Settings: settings(),
		Volumes: []metrics.Volume{{Name: "data", Free: 50 << 30, Size: 100 << 30, Warn: 10 << 30, Critical: 5 << 30}, {Name: "wal", Free: 1 << 30, Size: 2 << 30}},
		Archive: &metrics.Archive{Ready: 3, OldestReady: now.Add(-90 * time.Second), Push: push},
		Repository: &metrics.Repository{ReadAt: now.Add(-30 * time.Second), OK: true, Size: 123456, SizeAt: now.Add(-time.Minute),
			Backups: metrics.SummarizeBackups([]metrics.Backup{
				{Kind: "full", Start: now.Add(-26 * time.Hour), Stop: now.Add(-25 * time.Hour), Size: 1 << 30, Stored: 1 << 29},
				{Kind: "full", Start: now.Add(-2 * time.Hour), Stop: now.Add(-time.Hour - 50*time.Minute), Size: 2 << 30, Stored: 1 << 20},
				{Kind: "incr", Start: now.Add(-time.Hour), Stop: now.Add(-59 * time.Minute), Size: 2 << 30, Stored: 1 << 10},
			})},
		Jobs: &metrics.Jobs{ReadAt: now.Add(-20 * time.Second), OK: true, ByKind: map[string]metrics.JobKind{
			"drill": {Enabled: 1, Failing: 1, LastDuration: 90 * time.Second, LastEnded: now.Add(-time.Hour), Interval: 7 * 24 * time.Hour},
		}},
	}
	c := collect(t, s, nil)
	compare(t, c, `
# HELP pgguard_disk_free_bytes Free bytes on the volume (available to unprivileged users).
# TYPE pgguard_disk_free_bytes gauge
pgguard_disk_free_bytes{volume="data"} 5.36870912e+10
pgguard_disk_free_bytes{volume="wal"} 1.073741824e+09
# HELP pgguard_disk_critical_bytes disk.critical as free bytes on the volume: below it the agent refuses what would fill it.
# TYPE pgguard_disk_critical_bytes gauge
pgguard_disk_critical_bytes{volume="data"} 5.36870912e+09
# HELP pgguard_archive_ready_files WAL files PostgreSQL waits to archive (.ready files in pg_wal/archive_status).
# TYPE pgguard_archive_ready_files gauge
pgguard_archive_ready_files 3
# HELP pgguard_archive_oldest_ready_age_seconds Age of the oldest WAL file waiting to be archived (0 when none waits).
# TYPE pgguard_archive_oldest_ready_age_seconds gauge
pgguard_archive_oldest_ready_age_seconds 90
# HELP pgguard_wal_push_failures_total wal-push calls that failed (PostgreSQL retries the file).
# TYPE pgguard_wal_push_failures_total counter
pgguard_wal_push_failures_total 1
# HELP pgguard_wal_push_duration_seconds How long each wal-push (archive_command) call took, failures included, as the pushes recorded it beside the data directory.
# TYPE pgguard_wal_push_duration_seconds histogram
pgguard_wal_push_duration_seconds_bucket{le="0.05"} 0
pgguard_wal_push_duration_seconds_bucket{le="0.1"} 1
pgguard_wal_push_duration_seconds_bucket{le="0.25"} 1
pgguard_wal_push_duration_seconds_bucket{le="0.5"} 1
pgguard_wal_push_duration_seconds_bucket{le="1"} 1
pgguard_wal_push_duration_seconds_bucket{le="2.5"} 1
pgguard_wal_push_duration_seconds_bucket{le="5"} 2
pgguard_wal_push_duration_seconds_bucket{le="10"} 2
pgguard_wal_push_duration_seconds_bucket{le="30"} 2
pgguard_wal_push_duration_seconds_bucket{le="60"} 2
pgguard_wal_push_duration_seconds_bucket{le="120"} 2
pgguard_wal_push_duration_seconds_bucket{le="+Inf"} 2
pgguard_wal_push_duration_seconds_sum 3.08
pgguard_wal_push_duration_seconds_count 2
# HELP pgguard_backups Backups of the kind in the repository.
# TYPE pgguard_backups gauge
pgguard_backups{kind="full"} 2
pgguard_backups{kind="incr"} 1
# HELP pgguard_backup_last_age_seconds Time since the newest backup of the kind ended.
# TYPE pgguard_backup_last_age_seconds gauge
pgguard_backup_last_age_seconds{kind="full"} 6600
pgguard_backup_last_age_seconds{kind="incr"} 3540
# HELP pgguard_backup_last_duration_seconds How long the newest backup of the kind took.
# TYPE pgguard_backup_last_duration_seconds gauge
pgguard_backup_last_duration_seconds{kind="full"} 600
pgguard_backup_last_duration_seconds{kind="incr"} 60
# HELP pgguard_backup_last_size_bytes Size of the data the newest backup of the kind covers.
# TYPE pgguard_backup_last_size_bytes gauge
pgguard_backup_last_size_bytes{kind="full"} 2.147483648e+09
pgguard_backup_last_size_bytes{kind="incr"} 2.147483648e+09
# HELP pgguard_repository_size_bytes Bytes the backup repository holds (measured at most every five minutes).
# TYPE pgguard_repository_size_bytes gauge
pgguard_repository_size_bytes 123456
# HELP pgguard_jobs_failing Enabled jobs of the kind whose last run that succeeded or failed failed (drills: kind="drill").
# TYPE pgguard_jobs_failing gauge
pgguard_jobs_failing{kind="drill"} 1
# HELP pgguard_job_last_duration_seconds How long the newest run of the kind that succeeded or failed took.
# TYPE pgguard_job_last_duration_seconds gauge
pgguard_job_last_duration_seconds{kind="drill"} 90
# HELP pgguard_job_schedule_interval_seconds The longest gap the schedules of the kind's enabled jobs leave between two runs: a backup older than this is overdue.
# TYPE pgguard_job_schedule_interval_seconds gauge
pgguard_job_schedule_interval_seconds{kind="drill"} 604800
`, "pgguard_disk_free_bytes", "pgguard_disk_critical_bytes", "pgguard_archive_ready_files", "pgguard_archive_oldest_ready_age_seconds",
		"pgguard_wal_push_failures_total", "pgguard_wal_push_duration_seconds", "pgguard_backups", "pgguard_backup_last_age_seconds",
		"pgguard_backup_last_duration_seconds", "pgguard_backup_last_size_bytes", "pgguard_repository_size_bytes",
		"pgguard_jobs_failing", "pgguard_job_last_duration_seconds", "pgguard_job_schedule_interval_seconds")
}

// Every metric follows Prometheus' naming rules (promlint: units in
// names, _total on counters only, help on every metric), and a full
// scrape, wrapped with the node's labels as the agent registers it, is
// valid text exposition format.
func TestAFullScrapeIsValidAndLintClean(t *testing.T) {
	counters := metrics.NewCounters()
	counters.Event(dcs.Event{Time: now, Action: ha.Promote, Reason: ha.PromoteElection, Result: "ok"}, now.Add(-time.Second))
	counters.JobRun(jobs.KindFull, jobs.Succeeded)
	push := &walstats.Stats{}
	push.Add(time.Second, true, now)
	s := metrics.Snapshot{Now: now, Settings: settings(), Loop: primaryLoop(),
		Volumes:    []metrics.Volume{{Name: "data", Free: 1, Size: 2, Warn: 1, Critical: 1}},
		Archive:    &metrics.Archive{Push: push},
		Repository: &metrics.Repository{ReadAt: now, OK: true, SizeAt: now, Backups: metrics.SummarizeBackups([]metrics.Backup{{Kind: "full", Stop: now}})},
		Jobs:       &metrics.Jobs{ReadAt: now, OK: true, ByKind: map[string]metrics.JobKind{"full": {Enabled: 1, LastEnded: now, LastSuccess: now, Interval: time.Hour}}},
	}
	c := collect(t, s, counters)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	reg := prometheus.NewPedanticRegistry()
	prometheus.WrapRegistererWith(prometheus.Labels{"cluster": "main", "node": "n1"}, reg).MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	if len(parsed) != len(families) || len(parsed) < 40 {
		t.Fatalf("%d families parsed of %d gathered, want the same and at least 40", len(parsed), len(families))
	}
	for _, m := range parsed["pgguard_role"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["cluster"] != "main" || labels["node"] != "n1" {
			t.Fatalf("pgguard_role sample without the node's labels: %v", labels)
		}
	}
}

// sample is the value of name's sample whose labels include the given
// name, value pairs (the test fails when there is none).
func sample(t *testing.T, c prometheus.Collector, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !testcluster.HasLabels(m, labels...) {
				continue
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no sample of %s%v", name, labels)
	return 0
}
