package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/pg"
)

// observe gathers one snapshot for ha.Decide and updates the agent's
// memory from what it saw (never from what it will do).
func (a *Agent) observe(ctx context.Context) ha.Observation {
	now := time.Now()
	local := a.observeLocal(ctx)
	local.Isolated = a.trust.isolated()
	local.Disk, local.DiskDetail = a.diskLevel()
	a.recordDisk(ctx, local.Disk, local.DiskDetail)

	lctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
	cluster, err := a.loadCluster(lctx, now, local)
	cancel()
	storeOK := err == nil
	if storeOK {
		a.lastCluster = cluster
	} else {
		a.log.Warn("cannot read the store", "err", err)
		cluster = a.lastCluster
	}

	a.mu.Lock()
	before := a.mem
	// Observed and Remember copy the memory before they change it, so
	// Decide may keep this one.
	a.mem = ha.Observed(a.mem, a.cfg.Name, now, local, cluster, storeOK)
	mem := a.mem
	a.mu.Unlock()
	if lost := ha.LeaderLost(before, mem); lost != "" {
		go a.record(context.Background(), ha.EventLeaderLost, lost, "leader key of "+lost+" is gone (lease expired or released)", "observed")
	}
	local.Following, local.FollowingSince = mem.Following, mem.FollowingSince
	return ha.Observation{
		Now: now, Self: a.cfg.Name, Peers: a.peers(cluster), Settings: a.settings(),
		StoreOK: storeOK, Cluster: cluster, Local: local, Memory: mem, Store: a.observeStore(now, mem.HoldsLeader),
	}
}

// loadCluster reads the store for this loop: from the local member when
// the last view is recent and the local read is quiet (ha.Quiet), else
// linearizably. A linearizable read costs a round of messages from the
// raft leader to a quorum; an idle cluster made six a second.
//
// A member cut off from its quorum still answers local reads, so a
// running primary reads locally only while its lease renewals (which are
// linearizable) succeed: once one is a safety margin late, its reads fail
// with the store as before and ha.Decide fences it on the same deadline.
// Every other node reads linearizably at least once per ttl.
func (a *Agent) loadCluster(ctx context.Context, now time.Time, local ha.Local) (ha.Cluster, error) {
	h := a.cfg.HA
	a.mu.Lock()
	leaderLost := !a.mem.LeaderLostAt.IsZero()
	renewing := a.mem.HoldsLeader && !a.mem.LastRenew.IsZero() && now.Sub(a.mem.LastRenew) < h.SafetyMargin.D()
	a.mu.Unlock()
	primary := local.Running && (!local.Healthy || !local.InRecovery)
	if !leaderLost && (renewing || !primary) && !a.linearAt.IsZero() && now.Sub(a.linearAt) < h.TTL.D() && a.lastCluster.SystemID != "" {
		if c, err := a.store.LoadLocal(ctx); err == nil && ha.Quiet(a.lastCluster, c, false) {
			return c, nil
		}
	}
	c, err := a.store.Load(ctx)
	if err == nil {
		a.linearAt = now
	}
	return c, err
}

// storeTimeout bounds one store request: never longer than a loop.
func (a *Agent) storeTimeout() time.Duration {
	return min(a.cfg.HA.LoopInterval.D(), time.Second)
}

func (a *Agent) observeLocal(ctx context.Context) ha.Local {
	var l ha.Local
	l.Running = a.pg.Running()
	if !l.Running {
		// A hand-over's stop is over once the postmaster is gone, whether
		// or not a release waited for it (its goroutine's buffered send
		// cannot block): no later start may be taken for it.
		a.handOverStop = nil
	}
	if l.Running && a.handOverStop != nil {
		// A switchover's clean stop past its shutdown checkpoint, still
		// archiving: what the control file says, no SQL probe.
		a.closeConn()
		l.Data = ha.DataValid
		if ctl, err := a.pg.ControlFile(ctx); err == nil {
			l.SystemID, l.ControlState, l.ControlTLI, l.CheckpointLSN = ctl.SystemID, ctl.State, ctl.Timeline, ctl.CheckpointLSN
			l.ShutDown = ctl.State == ha.ControlShutDown
		}
		return l
	}
	if !l.Running {
		// The data directory (readable, writable, its control file)
		// matters only to start, rejoin or rebuild; while PostgreSQL runs
		// the SQL probe says all Decide needs, without an exec and a write
		// every loop.
		state, ctl, problem := a.pg.Inspect(ctx)
		l.Data, l.DataProblem = state, problem
		l.SystemID, l.ControlState, l.ControlTLI, l.CheckpointLSN = ctl.SystemID, ctl.State, ctl.Timeline, ctl.CheckpointLSN
		a.closeConn()
		return l
	}
	l.Data = ha.DataValid
	st, err := a.probeWithRetries(ctx)
	if err != nil {
		a.log.Warn("health check failed", "retries", a.cfg.HA.HealthRetries, "err", err)
		if a.wasHealthy {
			a.wasHealthy = false
			go a.record(context.Background(), ha.EventHealthCheckFailed, "",
				fmt.Sprintf("%d attempts %s apart failed: %v", a.cfg.HA.HealthRetries, a.cfg.HA.HealthDelay, err), "unhealthy")
		}
		return l
	}
	a.wasHealthy = true
	l.Healthy = true
	l.InRecovery, l.Timeline = st.InRecovery, st.Timeline
	l.ReplayPaused, l.ReplayTarget = st.ReplayPaused, a.pg.ReplayTarget()
	l.WalLSN, l.ReceivedLSN, l.ReplayedLSN, l.Streaming = st.WalLSN, st.ReceivedLSN, st.ReplayedLSN, st.Streaming
	l.RestoreOff = a.pg.RestoreOff()
	// Receiving on the restartpoint's timeline, the standby replays that
	// one. Once replay has reached the timeline still being received, it
	// stays there while the same postmaster runs (the probe connection
	// would have broken): asking again every loop until the next
	// restartpoint would cost a replication connection each time.
	caughtUp := st.Streaming && a.replayedOn.conn == a.conn && a.replayedOn.tli == st.ReceiveTimeline
	if caughtUp {
		l.ReplayTimeline = a.replayedOn.tli
	}
	if st.Streaming && st.ReceiveTimeline == st.CheckpointTimeline {
		a.replayHeld.conn, a.replayHeld.tli = a.conn, st.ReceiveTimeline
	}
	// replayHeld is set only while replay has caught up with the timeline
	// being received. With no WAL receiver since, and restore_command off
	// (a switchover's candidate once its primary stopped: ArchiveFetch),
	// only WAL received after that observation could bring the startup
	// process another timeline, and a primary shutting down for a
	// switchover sends none: the last value known on this connection
	// still holds. Asked again, it would cost the candidate's loop a
	// replication connection (100-200 ms on a host busy with the
	// switchover) just when the key is handed to it.
	held := !st.Streaming && l.RestoreOff && a.replayHeld.conn == a.conn && a.replayHeld.tli != 0
	if st.InRecovery && !caughtUp && !(st.Streaming && st.ReceiveTimeline == st.CheckpointTimeline) {
		if held {
			l.ReplayTimeline = a.replayHeld.tli
		} else {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			tli, err := a.pg.ReplayTimeline(rctx)
			cancel()
			if err != nil {
				a.log.Debug("replay timeline unknown", "err", err)
			} else {
				l.ReplayTimeline = tli
				// The probe's connection still answering means the same
				// postmaster ran through both reads: ReplayedLSN, read
				// first, is then of this timeline or an older one.
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				l.ReplayTimelineFresh = a.conn != nil && a.conn.Ping(pctx) == nil
				cancel()
				if st.Streaming && tli == st.ReceiveTimeline {
					a.replayedOn.conn, a.replayedOn.tli = a.conn, tli
					a.replayHeld.conn, a.replayHeld.tli = a.conn, tli
				}
			}
		}
		if !st.Streaming {
			if have, err := a.pg.HistoryTimelines(); err == nil {
				l.HistoryTimelines = have
			}
		}
	}
	if st.SystemID != "" {
		l.SystemID = st.SystemID
	}
	if !st.InRecovery {
		l.Following = ""
		l.SyncNames = ha.ParseSyncNames(st.SyncNames)
		l.Streamers = st.Streamers
		l.Replication = st.Replication
	}
	return l
}

// probeWithRetries runs the SQL probe up to health_retries times,
// health_delay apart, reconnecting as needed.
func (a *Agent) probeWithRetries(ctx context.Context) (pg.Status, error) {
	var last error
	for try := 0; try < a.cfg.HA.HealthRetries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return pg.Status{}, ctx.Err()
			case <-time.After(a.cfg.HA.HealthDelay.D()):
			}
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		if a.conn == nil || a.conn.IsClosed() {
			conn, err := a.pg.Connect(pctx)
			if err != nil {
				cancel()
				last = err
				continue
			}
			a.conn = conn
		}
		st, err := pg.Probe(pctx, a.conn)
		cancel()
		if err == nil {
			return st, nil
		}
		last = err
		a.closeConn()
	}
	return pg.Status{}, last
}

func (a *Agent) closeConn() {
	if a.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		a.conn.Close(ctx)
		cancel()
		a.conn = nil
	}
}

// publish writes this node's status to the store.
func (a *Agent) publish(ctx context.Context, o ha.Observation) {
	l := o.Local
	m := ha.Member{
		Name: a.cfg.Name, Host: a.cfg.Postgres.ConnectAddress, Port: a.cfg.Postgres.Port,
		Healthy: l.Healthy, Timeline: l.Timeline, WalLSN: l.WalLSN, ReceivedLSN: l.ReceivedLSN,
		ReplayedLSN: l.ReplayedLSN, Streaming: l.Streaming, Following: l.Following,
		NoFailover: a.cfg.HA.NoFailover, SystemID: l.SystemID, Problem: l.DataProblem, UpdatedAt: o.Now,
		Repository: a.cfg.Repository.URL != "",
	}
	switch {
	case l.Data == ha.DataValid && l.SystemID != "" && o.Cluster.SystemID != "" && l.SystemID != o.Cluster.SystemID:
		m.Role, m.State = ha.RoleNone, "split"
		m.Problem = fmt.Sprintf("data directory belongs to system %s, not the cluster's %s: run 'pgguard ctl reinit %s'", l.SystemID, o.Cluster.SystemID, a.cfg.Name)
	case o.Memory.RewindFailed && !a.cfg.HA.ReinitOnRewindFailure:
		m.Role, m.State = ha.RoleNone, "split"
		m.Problem = "pg_rewind cannot repair the divergence: run 'pgguard ctl reinit " + a.cfg.Name + "'"
	case !l.Running:
		m.Role, m.State = ha.RoleNone, "stopped"
		if l.Data == ha.DataEmpty {
			m.State = "empty"
		}
		if o.Cluster.Config.IsStopped(a.cfg.Name) {
			m.State = "stopped (planned)"
		}
	case !l.Healthy:
		m.Role, m.State = ha.RoleNone, "unhealthy"
	case l.InRecovery:
		m.Role, m.State = ha.RoleStandby, "running"
		if l.Streaming {
			m.State = "streaming"
		}
	default:
		m.Role, m.State = ha.RolePrimary, "running"
		if h, err := a.pg.TimelineHistory(l.Timeline); err == nil {
			m.History = h
		}
		m.Replication = l.Replication
		// Left over from its time in recovery: meaningless on a primary.
		m.ReceivedLSN, m.ReplayedLSN = 0, 0
	}
	m.Delayed = ha.Delayed(o)
	// Every problem is shown, the one that changes what the node does
	// first: a low disk must not hide that the node does not campaign.
	if l.Isolated != "" {
		m.Isolated = true
		m.Problem = joinProblems(m.Problem, "isolated: "+l.Isolated)
	}
	if l.Disk != ha.DiskOK {
		m.Problem = joinProblems(m.Problem, fmt.Sprintf("disk %s: free space below disk.%s", l.Disk, l.Disk))
	}
	pctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
	defer cancel()
	if due, _ := ha.PublishDue(o, a.published, a.publishedAt, m); !due {
		if o.Now.Sub(a.memberRenewedAt) >= o.Settings.Heartbeat() {
			if err := a.store.KeepMemberAlive(pctx); err != nil {
				// The lease may have run out (a store cut longer than the
				// ttl) and the record with it: the next loop writes the
				// record again under a new lease instead of waiting for
				// the next change or refresh, invisible meanwhile.
				a.log.Warn("cannot renew the member lease", "err", err)
				a.publishedAt = time.Time{}
				return
			}
			a.memberRenewedAt = o.Now
		}
		return
	}
	if err := a.store.PublishMember(pctx, m); err != nil {
		a.log.Warn("cannot publish member status", "err", err)
		return
	}
	a.published, a.publishedAt, a.memberRenewedAt = m, o.Now, o.Now
}

// joinProblems appends p to the problems already in have.
func joinProblems(have, p string) string {
	if have == "" {
		return p
	}
	return have + "; " + p
}
