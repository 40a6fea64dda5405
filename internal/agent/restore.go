package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/repo"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/restore"
)

// restoreFromRepository restores a backup of the node's repository into
// req.TargetDir, in this process (repoops.Restore, what `pgguard restore`
// runs), with the agent's own configuration: the repository's secrets stay
// in the config's key file or the agent's environment. The node is being
// rebuilt, not serving, so the restore's memory and time cost the HA loop
// nothing it needs. It returns the id of the backup restored.
func (a *Agent) restoreFromRepository(ctx context.Context, req repoops.RestoreRequest) (string, error) {
	s, err := a.repository()
	if err != nil {
		return "", err
	}
	if req.ArchiveMode == "" {
		req.ArchiveMode = "preserve"
	}
	res, err := repoops.Restore(ctx, s, req)
	if err != nil {
		return "", fmt.Errorf("restore from the repository: %w", err)
	}
	return res.BackupID, nil
}

// repository is how this node reaches its backup repository; notices
// ("repository unreachable, retrying") go to the agent's log.
func (a *Agent) repository() (reposettings.Settings, error) {
	if a.configPath == "" {
		return reposettings.Settings{}, errors.New("a restore from the repository needs the agent's config path")
	}
	s, err := reposettings.Load(a.configPath, reposettings.DefaultOverrides())
	if err != nil {
		return s, err
	}
	s.Notices = logWriter{a.log}
	return s, nil
}

// logWriter passes lines written to it to a logger.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// restoreStandby rebuilds the data directory from a backup (the newest
// when backupID is ""), set up as a standby that replays the archive; the
// next step points it at the primary. The backup is restored beside the
// data directory and swapped in only when complete, so a failed or
// interrupted attempt leaves the old directory where it was. The old one
// is then kept aside: as <data>.failed-<time> like any rebuild, or, for a
// rebuild that follows a whole-cluster restore (backupID given), as
// <data>.before-restore-<time>, which no later rebuild prunes.
func (a *Agent) restoreStandby(ctx context.Context, o ha.Observation, backupID string) error {
	data := filepath.Clean(a.cfg.Postgres.DataDir)
	staging := data + ".restoring"
	err := os.RemoveAll(staging)
	if err != nil {
		return err
	}
	if err := a.pg.Options().Account.MkdirAll(staging, 0o700); err != nil {
		return err
	}
	chosen := backupID
	if chosen == "" {
		if chosen, err = a.backupOnLeaderHistory(ctx, o); err != nil {
			_ = os.RemoveAll(staging)
			return err
		}
	}
	id, err := a.restoreFromRepository(ctx, repoops.RestoreRequest{TargetDir: staging, BackupRef: chosen, Target: restore.Target{Standby: true}})
	if err != nil {
		_ = os.RemoveAll(staging)
		return err
	}
	if backupID == "" {
		if err := a.moveDataAside(ctx); err != nil {
			return err
		}
		if err := os.Remove(data); err != nil {
			return err
		}
	} else if entries, err := os.ReadDir(data); err == nil && len(entries) > 0 {
		aside := data + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(data, aside); err != nil {
			return err
		}
		a.record(ctx, ha.EventMoveDataAside, "", "the rebuild after the cluster restore keeps the old data directory at "+aside, "ok")
	} else {
		_ = os.Remove(data)
	}
	if err := os.Rename(staging, data); err != nil {
		return fmt.Errorf("swap in the restored directory: %w", err)
	}
	a.log.Info("restored a backup as a standby", "backup", id)
	return nil
}

// backupOnLeaderHistory picks the newest backup of this cluster from
// which a standby can follow the leader: taken on the leader's timeline, or
// on an ancestor of it and ended before that timeline's switch. After a
// whole-cluster restore the newest backup by position can be one of the
// abandoned timeline, from which recovery would run past the fork. "" (the
// restore command's own choice) when the leader's history is unknown or the
// backups cannot be listed.
func (a *Agent) backupOnLeaderHistory(ctx context.Context, o ha.Observation) (string, error) {
	if o.Cluster.Leader == nil {
		return "", nil
	}
	leader, ok := o.Cluster.Members[o.Cluster.Leader.Name]
	if !ok || leader.Timeline == 0 {
		return "", nil
	}
	s, err := a.repository()
	if err != nil {
		return "", nil
	}
	list, err := repoops.List(ctx, s)
	if err != nil {
		return "", nil
	}
	best, bestLSN := "", lsn.LSN(0)
	for _, b := range list {
		if b.Kind != repo.KindFull && b.Kind != repo.KindIncr || (o.Cluster.SystemID != "" && strconv.FormatUint(b.SystemID, 10) != o.Cluster.SystemID) {
			continue
		}
		stop, err := lsn.Parse(b.StopLSN)
		if err != nil {
			continue
		}
		tli := int(b.Timeline)
		onHistory := tli == leader.Timeline
		for _, sw := range leader.History {
			if sw.TLI == tli && stop <= sw.Switch {
				onHistory = true
			}
		}
		if onHistory && (best == "" || stop > bestLSN) {
			best, bestLSN = b.ID, stop
		}
	}
	if best == "" {
		return "", fmt.Errorf("no backup of this cluster lies on the history of %s's timeline %d: take a backup, or reinit without --from-backup", leader.Name, leader.Timeline)
	}
	return best, nil
}

// restoredMarker, in a data directory, names the whole-cluster restore
// request (its time) that the directory was restored and promoted for: a
// retry after a crash between the promotion and the end of the request
// only finishes the request, it never restores again over a primary that
// may have acknowledged writes.
const restoredMarker = "pgguard.restored"

// restoreCluster is the restoring node's side of a whole-cluster restore.
//
//  1. While the old primary still runs, its current WAL segment is switched
//     and so archived at shutdown: a target in the last minutes is
//     reachable.
//  2. The backup is restored into a staging directory while the old data
//     directory stays in place, and swapped in only when complete; the old
//     one is kept as <data>.before-restore-<request time>, which no later
//     rebuild prunes. Any failure up to the promotion puts it back and
//     withdraws the request, so the cluster comes back as it was.
//  3. The server recovers to the target and pauses there. Only then, in one
//     transaction that requires this node to still hold the leader key and
//     the request to be unchanged (an operator's --abort wins before this
//     point), a timeline above every reserved one is claimed, and the server
//     is promoted onto it.
//  4. In one transaction the request is replaced by requests that every
//     other member rebuild itself from the same backup.
//
// The leader key is renewed throughout, whatever the watchdog concluded
// while the server was down.
func (a *Agent) restoreCluster(ctx context.Context, o ha.Observation) error {
	req := o.Cluster.Restore
	stopRenewing := a.renewThroughout(ctx)
	defer stopRenewing()
	data := filepath.Clean(a.cfg.Postgres.DataDir)
	tag := req.At.UTC().Format(time.RFC3339Nano)
	if marker, err := os.ReadFile(filepath.Join(data, restoredMarker)); err == nil && strings.HasPrefix(string(marker), tag+" ") {
		// Promoted by an earlier attempt of this request: finish it.
		if !a.pg.Running() {
			if err := a.pg.WriteConfig(true, nil); err != nil {
				return err
			}
			if err := a.pg.Start(ctx, time.Hour); err != nil {
				return err
			}
		}
		return a.finishClusterRestore(ctx, o, strings.TrimSpace(strings.TrimPrefix(string(marker), tag+" ")))
	}
	fail := func(err error) error {
		a.record(context.WithoutCancel(ctx), ha.EventClusterRestore, "", "whole-cluster restore abandoned; the cluster keeps its data: "+err.Error(), "failed")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = a.store.ClearClusterRestore(sctx, req.Revision)
		return err
	}
	if req.Target.IsZero() {
		return fail(fmt.Errorf("the request carries no target (made by an older version: %q): withdraw it with 'pgguard ctl restore-cluster --abort' and request it again", strings.Join(req.Args, " ")))
	}
	// 1. The old primary's last WAL goes to the archive.
	if a.pg.Running() {
		if err := a.switchWALAndStop(ctx); err != nil {
			return fail(err)
		}
	}
	// 2. Restore beside the data directory, then swap.
	aside := data + ".before-restore-" + req.At.UTC().Format("20060102T150405Z")
	_, statErr := os.Stat(aside)
	retry := statErr == nil // an earlier attempt of this request swapped already
	putBack := func(cause error) error {
		_ = a.pg.Stop("immediate", 30*time.Second)
		if _, err := os.Stat(aside); err == nil {
			_ = os.RemoveAll(data)
			if err := os.Rename(aside, data); err != nil {
				cause = errors.Join(cause, fmt.Errorf("put the old data directory back from %s: %w", aside, err))
			}
		}
		return fail(cause)
	}
	staging := data + ".restoring"
	if err := os.RemoveAll(staging); err != nil {
		return putBack(err)
	}
	if err := a.pg.Options().Account.MkdirAll(staging, 0o700); err != nil {
		return putBack(err)
	}
	t := req.Target
	backupID, err := a.restoreFromRepository(ctx, repoops.RestoreRequest{TargetDir: staging, BackupRef: t.Backup, Exclusive: t.Exclusive,
		Target: restore.Target{Time: t.Time, LSN: t.LSN, XID: t.XID, Name: t.Name, Immediate: t.Immediate, Action: "pause"}})
	if err != nil {
		_ = os.RemoveAll(staging)
		return putBack(err)
	}
	if retry {
		// What is in place is an earlier attempt's restore.
		if err := os.RemoveAll(data); err != nil {
			return putBack(err)
		}
	} else if err := os.Rename(data, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = os.RemoveAll(staging)
		return fail(fmt.Errorf("keep the data directory aside: %w", err))
	}
	if err := os.Rename(staging, data); err != nil {
		return putBack(fmt.Errorf("swap in the restored directory: %w", err))
	}
	a.record(ctx, ha.EventClusterRestore, "", fmt.Sprintf("backup %s restored (%s); the old data directory is kept at %s", backupID, req.Target, aside), "started")
	// 3. Recover to the target and pause there.
	primed := ha.Outcome{Action: ha.Action{Kind: ha.SetSyncNames}, At: time.Now()}
	if err := a.primeSyncNames(o, &primed); err != nil {
		return putBack(err)
	}
	a.remember(primed)
	if err := a.pg.WriteConfig(true, nil); err != nil {
		return putBack(err)
	}
	if err := a.pg.Start(ctx, time.Hour); err != nil {
		return putBack(err)
	}
	if err := a.waitPausedAtTarget(ctx, time.Hour); err != nil {
		return putBack(err)
	}
	st, err := a.probeLocal(ctx)
	if err != nil {
		return putBack(err)
	}
	next := max(o.Cluster.MaxTimeline, st.Timeline, a.pg.HighestHistory()) + 1
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = a.store.ReserveRestoreTimeline(sctx, next, req.Revision)
	cancel()
	if err != nil {
		return putBack(fmt.Errorf("before promoting: %w", err))
	}
	if err := a.pg.SkipTimelines(st.Timeline, next-1); err != nil {
		return putBack(err)
	}
	if err := a.promoteLocal(ctx); err != nil {
		// Past this point the server may have opened: it is not put back.
		return err
	}
	if err := restore.ClearRecoverySettings(data); err != nil {
		return err
	}
	if err := a.pg.WriteDataFile(restoredMarker, tag+" "+backupID+"\n"); err != nil {
		return err
	}
	// 4. Hand the other members their rebuild.
	return a.finishClusterRestore(ctx, o, backupID)
}

// finishClusterRestore ends the request (retrying a busy store) and records
// the outcome.
func (a *Agent) finishClusterRestore(ctx context.Context, o ha.Observation, backupID string) error {
	if err := restore.ClearRecoverySettings(a.cfg.Postgres.DataDir); err != nil {
		return err
	}
	// Every member this node knows of, alive or not, rebuilds.
	others := map[string]bool{}
	for _, n := range o.Peers {
		others[n] = true
	}
	for n := range o.Cluster.Members {
		others[n] = true
	}
	delete(others, a.cfg.Name)
	rebuild := slices.Sorted(maps.Keys(others))
	tli := 0
	if st, err := a.probeLocal(ctx); err == nil {
		tli = st.Timeline
	}
	var err error
	for attempt := 0; attempt < 30; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = a.store.FinishClusterRestore(sctx, a.cfg.Name, o.Cluster.Restore.Revision, rebuild, backupID)
		cancel()
		if err == nil || errors.Is(err, dcs.ErrNotLeader) || errors.Is(err, dcs.ErrChanged) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(a.cfg.Postgres.DataDir, restoredMarker))
	a.record(ctx, ha.EventClusterRestore, "", fmt.Sprintf("primary open on timeline %d from backup %s; rebuilding %s from it", tli, backupID, strings.Join(rebuild, ", ")), "ok")
	return nil
}

// renewThroughout renews the leader lease every loop interval until the
// returned function is called, whether or not the watchdog thinks this node
// holds it (with PostgreSQL down there is nothing to fence; the renewal
// itself says whether the key is still ours).
func (a *Agent) renewThroughout(ctx context.Context) func() {
	return a.everyLoop(ctx, a.renew)
}

// switchWALAndStop makes the running primary switch to a new WAL segment,
// so the last one is complete and archived during the shutdown, and stops
// it cleanly.
func (a *Agent) switchWALAndStop(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if conn, err := a.pg.Connect(qctx); err == nil {
		var inRecovery bool
		if conn.QueryRow(qctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery) == nil && !inRecovery {
			_, _ = conn.Exec(qctx, `SELECT pg_switch_wal()`)
		}
		conn.Close(context.WithoutCancel(ctx))
	}
	cancel()
	return a.pg.Stop("fast", 5*time.Minute)
}

// waitPausedAtTarget waits until recovery has reached the target and
// paused (recovery_target_action = pause).
func (a *Agent) waitPausedAtTarget(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if !a.pg.Running() {
			return fmt.Errorf("postgres exited during recovery (is the target reachable with the archived WAL?): see %s", a.pg.Options().LogFile)
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := a.pg.Connect(qctx)
		if err == nil {
			var state string
			err = conn.QueryRow(qctx, `SELECT pg_get_wal_replay_pause_state()`).Scan(&state)
			conn.Close(context.WithoutCancel(ctx))
			if err == nil && state == "paused" {
				cancel()
				return nil
			}
		}
		cancel()
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("recovery did not reach the target within %s (last: %v)", limit, last)
}

// promoteLocal ends the paused recovery and waits until the server writes.
func (a *Agent) promoteLocal(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := a.pg.Connect(qctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ok bool
	if err := conn.QueryRow(qctx, `SELECT pg_promote(true, 110)`).Scan(&ok); err != nil {
		return fmt.Errorf("promote the restored server: %w", err)
	}
	if !ok {
		return errors.New("promote the restored server: not promoted within 110 s")
	}
	return nil
}

// probeLocal reads the local server's recovery state and timeline.
func (a *Agent) probeLocal(ctx context.Context) (pg.Status, error) {
	conn, err := a.pg.Connect(ctx)
	if err != nil {
		return pg.Status{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return pg.Probe(ctx, conn)
}
