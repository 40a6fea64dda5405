package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/restore"
)

// runRestore runs this binary's restore command with the agent's own
// configuration, so the repository's secrets stay in the config's key file
// or the agent's environment, never in arguments. It returns the id of the
// backup restored.
func (a *Agent) runRestore(ctx context.Context, dir string, args ...string) (string, error) {
	if a.exe == "" || a.configPath == "" {
		return "", errors.New("a restore from the repository needs the agent's executable and config path")
	}
	full := append([]string{"restore", "-c", a.configPath, "--target-dir", dir, "--channels", "4", "-o", "json"}, args...)
	cmd := exec.CommandContext(ctx, a.exe, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("restore from the repository: %w: %s", err, tail(strings.TrimSpace(stderr.String()), 600))
	}
	var res struct {
		BackupID string `json:"backup_id"`
	}
	if err := json.Unmarshal(lastJSON(stdout.Bytes()), &res); err != nil || res.BackupID == "" {
		return "", fmt.Errorf("restore from the repository: no result in its output: %s", tail(stdout.String(), 300))
	}
	return res.BackupID, nil
}

// restoreStandby fills the empty data directory with a backup (the newest
// when backupID is ""), set up as a standby that replays the archive; the
// next step points it at the primary.
func (a *Agent) restoreStandby(ctx context.Context, backupID string) error {
	args := []string{"--standby"}
	if backupID != "" {
		args = append(args, "--backup", backupID)
	}
	id, err := a.runRestore(ctx, a.cfg.Postgres.DataDir, args...)
	if err != nil {
		// Leave an empty directory so the next attempt starts clean.
		a.pg.EmptyDataDir()
		return err
	}
	a.log.Info("restored a backup as a standby", "backup", id)
	return nil
}

// restoreTargetFlags are the restore flags a whole-cluster restore request
// may carry; anything else in the store is refused.
var restoreTargetFlags = []string{"--backup", "--time", "--lsn", "--xid", "--name", "--immediate", "--exclusive"}

func checkRestoreArgs(args []string) error {
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(args[i], "=")
		if !slices.Contains(restoreTargetFlags, name) {
			return fmt.Errorf("whole-cluster restore request carries %q: only %s are allowed", args[i], strings.Join(restoreTargetFlags, ", "))
		}
		if !hasValue && name != "--immediate" && name != "--exclusive" {
			i++ // the flag's value
		}
	}
	return nil
}

// restoreCluster is the restoring node's side of a whole-cluster restore.
// It restores into a staging directory while the old data directory stays
// in place; only a complete restore is swapped in. The server then
// recovers to the target and promotes itself onto a new timeline while
// this agent keeps the leader key. If anything fails, the old data
// directory is put back and the request is withdrawn, so the cluster comes
// back as it was. On success the request is replaced, in one transaction,
// by requests that every other member rebuild itself from the same backup.
func (a *Agent) restoreCluster(ctx context.Context, o ha.Observation) error {
	req := o.Cluster.Restore
	fail := func(err error) error {
		a.record(context.WithoutCancel(ctx), "cluster-restore", "", "whole-cluster restore abandoned; the cluster keeps its data: "+err.Error(), "failed")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.storeTimeout())
		defer cancel()
		_ = a.store.AbortClusterRestore(sctx)
		return err
	}
	if err := checkRestoreArgs(req.Args); err != nil {
		return fail(err)
	}
	data := filepath.Clean(a.cfg.Postgres.DataDir)
	staging := data + ".restoring"
	if err := os.RemoveAll(staging); err != nil {
		return fail(err)
	}
	if err := a.pg.Options().Account.MkdirAll(staging, 0o700); err != nil {
		return fail(err)
	}
	backupID, err := a.runRestore(ctx, staging, append(slices.Clone(req.Args), "--action", "promote", "--archive-mode", "preserve")...)
	if err != nil {
		_ = os.RemoveAll(staging)
		return fail(err)
	}
	// The data directory from before this request is kept under a name of
	// its own, never pruned by a later rebuild. If it exists already, an
	// earlier attempt of this same request died after the swap, and what
	// is in place is that attempt's restore: it goes.
	aside := data + ".before-restore-" + req.At.UTC().Format("20060102T150405Z")
	if _, err := os.Stat(aside); err == nil {
		if err := os.RemoveAll(data); err != nil {
			_ = os.RemoveAll(staging)
			return fail(err)
		}
	} else if err := os.Rename(data, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = os.RemoveAll(staging)
		return fail(fmt.Errorf("keep the data directory aside: %w", err))
	}
	putBack := func(cause error) error {
		_ = a.pg.Stop("immediate", 30*time.Second)
		_ = os.RemoveAll(data)
		if err := os.Rename(aside, data); err != nil {
			_ = a.pg.Options().Account.MkdirAll(data, 0o700)
		}
		return fail(cause)
	}
	if err := os.Rename(staging, data); err != nil {
		return putBack(fmt.Errorf("swap in the restored directory: %w", err))
	}
	a.record(ctx, "cluster-restore", "", fmt.Sprintf("backup %s restored (%s); the old data directory is kept at %s", backupID, strings.Join(req.Args, " "), aside), "started")
	if err := a.pg.WriteConfig(true, nil); err != nil {
		return putBack(err)
	}
	// Recovery to the target, then promotion, under the leader lease.
	var tli int
	err = a.keepingLease(ctx, func() error {
		if err := a.pg.Start(ctx, time.Hour); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Hour)
		var last error
		for time.Now().Before(deadline) {
			if !a.pg.Running() {
				return fmt.Errorf("postgres exited during recovery: see %s", a.pg.Options().LogFile)
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := a.probeLocal(qctx)
			cancel()
			if err == nil && !st.InRecovery {
				tli = st.Timeline
				return nil
			}
			last = err
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		return fmt.Errorf("recovery did not reach the target within an hour (last: %v)", last)
	})
	if err != nil {
		return putBack(err)
	}
	if err := restore.ClearRecoverySettings(data); err != nil {
		a.log.Warn("could not clear the recovery settings", "err", err)
	}
	sctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
	defer cancel()
	if tli > o.Cluster.MaxTimeline {
		// Later promotions go above the restored primary's timeline.
		_ = a.store.ReserveTimeline(sctx, tli)
	}
	var rebuild []string
	for _, n := range o.Peers {
		if n != a.cfg.Name {
			rebuild = append(rebuild, n)
		}
	}
	if err := a.store.FinishClusterRestore(sctx, rebuild, backupID); err != nil {
		return err
	}
	a.record(ctx, "cluster-restore", "", fmt.Sprintf("primary open on timeline %d from backup %s; rebuilding %s from it", tli, backupID, strings.Join(rebuild, ", ")), "ok")
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
