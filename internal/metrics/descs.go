package metrics

import "github.com/prometheus/client_golang/prometheus"

// descs are the metrics' descriptions. docs/METRICS.md lists them for
// people; a test checks that the alert rules name none that is not here.
type descs struct {
	// This node, from the agent's last loop.
	role, leaseHeld, leaseAge, leaseTTL, leaseFence, loopAge, storeOK, running, healthy, timeline *prometheus.Desc
	lagBytes, lagSeconds, streaming, syncStandby, lagLimit                                        *prometheus.Desc
	// The cluster as this node sees it; the standbys as the primary
	// holding the lease sees them.
	paused, split                                                     *prometheus.Desc
	standbyLagBytes, standbyLagSeconds, standbyStreaming, standbySync *prometheus.Desc
	// Disk and WAL archive.
	diskFree, diskSize, diskWarn, diskCritical                                *prometheus.Desc
	archiveReady, archiveReadyAge, pushLatency, pushFailures, pushLastSuccess *prometheus.Desc
	// Repository and jobs (the background reads).
	readAt, readOK                                                         *prometheus.Desc
	backups, backupAge, backupSize, backupStored, backupDuration, repoSize *prometheus.Desc
	jobsEnabled, jobsFailing, jobDuration, jobLastSuccess, jobInterval     *prometheus.Desc
	// What this agent did since it started.
	events, failovers, switchovers, lastFailover, lastSwitchover, fences, jobRuns, restores *prometheus.Desc
}

func newDescs() descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("pgguard_"+name, help, labels, nil)
	}
	return descs{
		role:        d("role", "1 for the role this node has now (what the health endpoints say: primary holding the lease, replica, demoted — running read-write without the lease —, stopped), 0 for the others.", "role"),
		leaseHeld:   d("leader_lease_held", "1 while this node holds the leader lease."),
		leaseAge:    d("leader_lease_age_seconds", "Time since this node last renewed the leader lease it holds (only while it holds one)."),
		leaseTTL:    d("leader_lease_ttl_seconds", "The leader lease's time to live (ha.ttl)."),
		leaseFence:  d("leader_lease_fence_after_seconds", "Lease age at which a primary fences itself (ha.ttl - ha.safety_margin)."),
		loopAge:     d("loop_age_seconds", "Time since the agent's loop last finished."),
		storeOK:     d("store_reachable", "1 when the agent's last loop read the cluster store."),
		running:     d("postgres_running", "1 while the local postmaster runs."),
		healthy:     d("postgres_healthy", "1 while the local PostgreSQL runs and answers its health check."),
		timeline:    d("timeline", "The local PostgreSQL's timeline."),
		lagBytes:    d("replication_lag_bytes", "This standby's replay position behind the primary's last published WAL position (what /replica?lag= checks)."),
		lagSeconds:  d("replication_lag_seconds", "This standby's replay lag as the primary's pg_stat_replication reports it (absent when the primary does not)."),
		streaming:   d("replication_streaming", "1 while this standby's WAL receiver streams from its upstream."),
		syncStandby: d("sync_standby", "1 when this standby is in the cluster's synchronous set."),
		lagLimit:    d("failover_lag_limit_bytes", "ha.maximum_lag_on_failover: a standby further behind is no failover candidate."),

		paused:            d("cluster_paused", "1 while automatic failover is paused (ctl pause)."),
		split:             d("split_members", "Members that publish themselves as a running primary while another member holds the leader lease, as this node sees the store."),
		standbyLagBytes:   d("standby_lag_bytes", "Each standby's WAL position behind the primary's, as the primary holding the lease sees it (ctl status's LAG).", "standby"),
		standbyLagSeconds: d("standby_lag_seconds", "Each standby's replay lag from the primary's pg_stat_replication (primary holding the lease only).", "standby"),
		standbyStreaming:  d("standby_streaming", "1 when the member streams from the primary holding the lease, 0 when it does not (stopped, unreachable, not connected).", "standby"),
		standbySync:       d("standby_sync_state", "1 for the standby's sync_state in the primary's pg_stat_replication, 0 for the others.", "standby", "state"),

		diskFree:     d("disk_free_bytes", "Free bytes on the volume (available to unprivileged users).", "volume"),
		diskSize:     d("disk_size_bytes", "Size of the volume.", "volume"),
		diskWarn:     d("disk_warn_bytes", "disk.warn as free bytes on the volume.", "volume"),
		diskCritical: d("disk_critical_bytes", "disk.critical as free bytes on the volume: below it the agent refuses what would fill it.", "volume"),

		archiveReady:    d("archive_ready_files", "WAL files PostgreSQL waits to archive (.ready files in pg_wal/archive_status)."),
		archiveReadyAge: d("archive_oldest_ready_age_seconds", "Age of the oldest WAL file waiting to be archived (0 when none waits)."),
		pushLatency:     d("wal_push_duration_seconds", "How long each wal-push (archive_command) call took, failures included, as the pushes recorded it beside the data directory."),
		pushFailures:    d("wal_push_failures_total", "wal-push calls that failed (PostgreSQL retries the file)."),
		pushLastSuccess: d("wal_push_last_success_timestamp_seconds", "When the last successful wal-push ended (Unix time)."),

		readAt:         d("figures_read_timestamp_seconds", "When the agent last read the figures of source (repository: the backups and size; jobs: the store's jobs and runs), Unix time; read in the background, at most about once a minute.", "source"),
		readOK:         d("figures_read_ok", "1 when the last read of source succeeded (the figures of the last good read are kept).", "source"),
		backups:        d("backups", "Backups of the kind in the repository.", "kind"),
		backupAge:      d("backup_last_age_seconds", "Time since the newest backup of the kind ended.", "kind"),
		backupSize:     d("backup_last_size_bytes", "Size of the data the newest backup of the kind covers.", "kind"),
		backupStored:   d("backup_last_stored_bytes", "Bytes the newest backup of the kind newly stored in the repository.", "kind"),
		backupDuration: d("backup_last_duration_seconds", "How long the newest backup of the kind took.", "kind"),
		repoSize:       d("repository_size_bytes", "Bytes the backup repository holds (measured at most every five minutes)."),
		jobsEnabled:    d("jobs_enabled", "Enabled jobs of the kind.", "kind"),
		jobsFailing:    d("jobs_failing", "Enabled jobs of the kind whose last run that succeeded or failed failed (drills: kind=\"drill\").", "kind"),
		jobDuration:    d("job_last_duration_seconds", "How long the newest run of the kind that succeeded or failed took.", "kind"),
		jobLastSuccess: d("job_last_success_timestamp_seconds", "When the newest successful run of the kind ended (Unix time).", "kind"),
		jobInterval:    d("job_schedule_interval_seconds", "The longest gap the schedules of the kind's enabled jobs leave between two runs: a backup older than this is overdue.", "kind"),

		events:         d("events_total", "History events this agent recorded, by action.", "action"),
		failovers:      d("failovers_total", "Promotions of this node that were failovers (an election or an operator's takeover)."),
		switchovers:    d("switchovers_total", "Promotions of this node by a switchover."),
		lastFailover:   d("last_failover_duration_seconds", "From this node seeing the leader key gone to the end of its last failover promotion."),
		lastSwitchover: d("last_switchover_duration_seconds", "From this node seeing the old primary's leader key released to the end of its last switchover promotion."),
		fences:         d("fences_total", "Fencing events of this node: its primary stopped because its lease was about to expire or another took over."),
		jobRuns:        d("job_runs_total", "Job runs this agent executed, by kind and result.", "kind", "result"),
		restores:       d("restore_command_served_total", "restore_command calls this agent answered for its PostgreSQL (pgguard-wal asks the agent, which keeps the repository open), by answer: found, missing (the archive lacks the file), error (pgguard-wal then ran pgguard).", "answer"),
	}
}

func (d descs) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.role, d.leaseHeld, d.leaseAge, d.leaseTTL, d.leaseFence, d.loopAge, d.storeOK, d.running, d.healthy, d.timeline,
		d.lagBytes, d.lagSeconds, d.streaming, d.syncStandby, d.lagLimit,
		d.paused, d.split, d.standbyLagBytes, d.standbyLagSeconds, d.standbyStreaming, d.standbySync,
		d.diskFree, d.diskSize, d.diskWarn, d.diskCritical,
		d.archiveReady, d.archiveReadyAge, d.pushLatency, d.pushFailures, d.pushLastSuccess,
		d.readAt, d.readOK, d.backups, d.backupAge, d.backupSize, d.backupStored, d.backupDuration, d.repoSize,
		d.jobsEnabled, d.jobsFailing, d.jobDuration, d.jobLastSuccess, d.jobInterval,
		d.events, d.failovers, d.switchovers, d.lastFailover, d.lastSwitchover, d.fences, d.jobRuns, d.restores,
	}
}
