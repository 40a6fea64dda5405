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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
)

// jobRunner executes the backup jobs this node is due to run, beside the
// HA loop (a long backup never delays a failover decision). What to run is
// decided by jobs.Plan.
//
// Each run's command is a separate process, this same binary (`pgguard
// backup full -o json …`), on purpose: a job runs while the node serves,
// often on the primary, so the job's memory and CPU, a crash or a stuck
// command must not take the HA loop down with it; `jobs stop` must be able
// to end a job, stuck or not, by ending its process, where an in-process
// job could only be asked to stop; and each job's environment (and, where
// needed, its privileges) is its own. The command hands its figures back
// as a typed, versioned message (jobs.Result) on a pipe of its own
// (runWithResult), never mixed with the output a person reads, which goes
// into the run's log.
type jobRunner struct {
	a     *Agent
	clock func() time.Time

	mu     sync.Mutex
	active map[string]context.CancelFunc // run key → cancel
	// unrecorded holds the outcome of runs that ended while the store
	// could not take it: written again at every tick until it is, and
	// counted as active meanwhile, so that the run is neither reported as
	// interrupted nor run again.
	unrecorded map[string]jobs.Run
	wg         sync.WaitGroup

	// The jobs and runs last read, kept until the store signals a change
	// (dcs.WatchJobs) or they are jobsReread old: reading them every tick
	// was most of an idle agent's store traffic.
	list   []jobs.Job
	runs   map[string][]jobs.Run
	readAt time.Time
	stale  bool
}

// jobsReread bounds how long the runner trusts its copy of the jobs and
// runs without a change signalled (a backstop: the watch signals every
// change and every restart of itself).
const jobsReread = time.Minute

// jobsClock is the runner's clock: real time, or for tests a clock that
// runs speed times faster from a fixed epoch shared by every agent.
func jobsClock(speed float64, epoch time.Time) func() time.Time {
	if speed <= 1 || epoch.IsZero() {
		return time.Now
	}
	return func() time.Time {
		return epoch.Add(time.Duration(float64(time.Since(epoch)) * speed))
	}
}

func (a *Agent) runJobs(ctx context.Context) {
	r := &jobRunner{a: a, clock: jobsClock(a.cfg.Jobs.ClockSpeed, a.cfg.Jobs.ClockEpoch), active: map[string]context.CancelFunc{},
		unrecorded: map[string]jobs.Run{}}
	changed := a.store.WatchJobs(ctx)
	t := time.NewTicker(a.cfg.Jobs.Interval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stopAll()
			return
		case <-changed:
			r.stale = true
			continue
		case <-t.C:
		}
		if err := r.tick(ctx); err != nil {
			a.log.Debug("jobs", "err", err)
		}
	}
}

func (r *jobRunner) stopAll() {
	r.mu.Lock()
	for _, cancel := range r.active {
		cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *jobRunner) tick(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.read(sctx); err != nil || len(r.list) == 0 {
		return err
	}
	list, runs := r.list, r.runs
	c, err := r.cluster(sctx)
	if err != nil {
		return err
	}
	v := jobs.View{Now: r.clock(), Self: r.a.cfg.Name, Alive: map[string]bool{}, Jobs: list, Runs: runs, Active: map[string]bool{}}
	if c.Leader != nil {
		v.Leader = c.Leader.Name
	}
	for name := range c.Members {
		v.Alive[name] = true
	}
	r.recordOutcomes(sctx, runs)
	r.mu.Lock()
	for k := range r.active {
		v.Active[k] = true
	}
	for k := range r.unrecorded {
		v.Active[k] = true
	}
	r.mu.Unlock()
	for _, s := range jobs.Plan(v) {
		r.do(ctx, s, v.Leader)
	}
	return nil
}

// read refreshes the jobs and runs when a change was signalled or the
// copy is jobsReread old.
func (r *jobRunner) read(ctx context.Context) error {
	if !r.stale && !r.readAt.IsZero() && time.Since(r.readAt) < jobsReread {
		return nil
	}
	// Cleared before reading: a change signalled meanwhile is read at
	// the next tick.
	r.stale = false
	list, err := r.a.store.Jobs(ctx)
	if err != nil {
		r.stale = true
		return err
	}
	runs := map[string][]jobs.Run{}
	if len(list) > 0 {
		if runs, err = r.a.store.Runs(ctx); err != nil {
			r.stale = true
			return err
		}
	}
	r.list, r.runs, r.readAt = list, runs, time.Now()
	return nil
}

// cluster is the HA loop's last view of the store when it is recent (the
// leader and the live members are all the plan needs), else a read.
func (r *jobRunner) cluster(ctx context.Context) (ha.Cluster, error) {
	if v := r.a.api.last.Load(); v != nil && v.obs.StoreOK && time.Since(v.at) < 2*r.a.cfg.HA.LoopInterval.D() {
		return v.obs.Cluster, nil
	}
	return r.a.store.Load(ctx)
}

func (r *jobRunner) do(ctx context.Context, s jobs.Step, leader string) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	store, self, now := r.a.store, r.a.cfg.Name, time.Now()
	switch s.Kind {
	case jobs.Claim:
		run := s.Run
		run.Started = now
		rev, ok, err := store.ClaimRun(sctx, run)
		if err == nil && ok {
			r.start(ctx, s.Job, run, rev, leader)
		}
	case jobs.Adopt:
		run := s.Run
		run.Node, run.Status, run.Started = self, jobs.Running, now
		rev, ok, err := store.UpdateRun(sctx, run, s.Run.Revision)
		if err == nil && ok {
			r.start(ctx, s.Job, run, rev, leader)
		}
	case jobs.Interrupt:
		old := s.Run
		old.Status, old.Ended, old.Message = jobs.Interrupted, now, s.Reason
		if _, ok, err := store.UpdateRun(sctx, old, s.Run.Revision); err != nil || !ok {
			return
		}
		r.a.record(ctx, ha.EventJobInterrupted, s.Job.ID, s.Reason, "interrupted")
		if s.Retry && old.Node == self {
			// This node restarted during the run: its backup may have
			// finished all the same. Look before taking another.
			if id := r.backupSince(ctx, s.Job, old.Started); id != "" {
				old.Status, old.BackupID = jobs.Succeeded, id
				old.Message = fmt.Sprintf("this node restarted before recording the outcome; backup %s, which the run took, is in the repository", id)
				if cur, err := store.Runs(sctx); err == nil {
					for _, c := range cur[old.Job] {
						if c.Key() == old.Key() {
							_, _, _ = store.UpdateRun(sctx, old, c.Revision)
						}
					}
				}
				r.a.record(ctx, ha.EventJobRecovered, s.Job.ID, old.Message, "succeeded")
				return
			}
		}
		if s.Retry {
			next := jobs.Run{Job: old.Job, Trigger: old.Trigger, Attempt: old.Attempt + 1, Node: self, Status: jobs.Running, Started: now}
			if rev, ok, err := store.ClaimRun(sctx, next); err == nil && ok {
				r.start(ctx, s.Job, next, rev, leader)
			}
		}
	case jobs.Halt:
		r.mu.Lock()
		if cancel, ok := r.active[s.Run.Key()]; ok {
			cancel()
		}
		r.mu.Unlock()
	}
}

// start executes run in the background.
func (r *jobRunner) start(ctx context.Context, j jobs.Job, run jobs.Run, rev int64, leader string) {
	rctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.active[run.Key()] = cancel
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.active, run.Key())
			r.mu.Unlock()
			cancel()
		}()
		r.execute(rctx, j, run, rev, leader)
	}()
}

// execute runs precondition, pre script, the job's command and post
// script, then records the outcome.
func (r *jobRunner) execute(ctx context.Context, j jobs.Job, run jobs.Run, rev int64, leader string) {
	a := r.a
	a.log.Info("job run started", "job", j.ID, "trigger", run.Trigger, "attempt", run.Attempt)
	jobEnv := []string{
		"PGGUARD_JOB_ID=" + j.ID, "PGGUARD_JOB_NAME=" + j.Name, "PGGUARD_JOB_KIND=" + string(j.Kind),
		"PGGUARD_RUN_TRIGGER=" + run.Trigger.UTC().Format(time.RFC3339), "PGGUARD_RUN_ATTEMPT=" + strconv.Itoa(run.Attempt),
		"PGGUARD_NODE=" + a.cfg.Name, "PGGUARD_CLUSTER=" + a.cfg.Cluster}
	env := append(os.Environ(), jobEnv...)
	var log bytes.Buffer
	status, msg := jobs.Succeeded, ""
	if err := r.checkScripts(j); err != nil {
		// Nothing of the job runs, not even its command: a job whose
		// definition is not what this node allows is refused whole.
		status, msg = jobs.Failed, "refused: "+err.Error()
		a.record(context.WithoutCancel(ctx), ha.EventJobRefused, j.ID, err.Error(), "refused")
		j.PostScript = nil
	}
	if status == jobs.Succeeded && j.Precondition != nil {
		if err := r.runScript(ctx, "precondition", j, j.Precondition, jobEnv, &log); err != nil {
			status, msg = jobs.Skipped, "precondition: "+err.Error()
		}
	}
	if status == jobs.Succeeded && j.PreScript != nil {
		if err := r.runScript(ctx, "pre script", j, j.PreScript, jobEnv, &log); err != nil {
			status, msg = jobs.Failed, "pre script: "+err.Error()
		}
	}
	var result jobs.Result
	if status == jobs.Succeeded {
		args, err := r.commandArgs(j, leader, run.Attempt)
		if err != nil {
			status, msg = jobs.Failed, err.Error()
		} else {
			cmd := exec.CommandContext(ctx, a.exe, args...)
			var stdout bytes.Buffer
			stderr := &progressWriter{log: &log}
			cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, stderr, env
			stopProgress := r.publishProgress(ctx, &run, &rev, stderr)
			var resultErr error
			result, resultErr, err = runWithResult(cmd, resultGrace)
			stopProgress()
			stderr.flush()
			if err != nil {
				status, msg = jobs.Failed, fmt.Sprintf("%s: %v", j.Kind, err)
				if why := cliError(log.String()); why != "" {
					msg += ": " + why
				}
			}
			log.Write(stdout.Bytes())
			// A command that failed may well have had no result to
			// give; one that succeeded without one still succeeds.
			if resultErr != nil && (err == nil || !errors.Is(resultErr, jobs.ErrNoResult)) {
				fmt.Fprintf(&log, "pgguard %s: %v; the run's figures are not known\n", j.Kind, resultErr)
				a.log.Warn("job command gave no result", "job", j.ID, "err", resultErr)
			}
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		status, msg = jobs.Stopped, "stopped"
	}
	if j.PostScript != nil {
		penv := append(jobEnv, "PGGUARD_RUN_STATUS="+string(status))
		if err := r.runScript(context.WithoutCancel(ctx), "post script", j, j.PostScript, penv, &log); err != nil && status == jobs.Succeeded {
			status, msg = jobs.Failed, "post script: "+err.Error()
		}
	}
	run.Status, run.Ended, run.Message, run.Progress = status, time.Now(), msg, nil
	run.BackupID, run.BytesRead, run.BytesStored = result.BackupID, result.BytesRead, result.BytesStored
	if d := run.Ended.Sub(run.Started).Seconds(); d > 0 {
		run.Speed = float64(result.BytesRead) / d
	}
	run.Log = tail(log.String(), 4000)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if !r.writeOutcome(sctx, run, rev) {
		r.mu.Lock()
		r.unrecorded[run.Key()] = run
		r.mu.Unlock()
		a.log.Warn("job run ended but the store did not take its outcome: writing it again at the next tick", "job", j.ID, "status", status)
	}
	a.log.Info("job run ended", "job", j.ID, "status", status, "message", msg)
	a.metrics.runEnded(j.Kind, status)
	if status == jobs.Failed {
		a.record(context.WithoutCancel(ctx), ha.EventJobFailed, j.ID, msg, "failed")
	}
}

// writeOutcome records a run's end state at revision rev, or over
// whatever an operator wrote since (a stop request); false when the store
// did not take it.
func (r *jobRunner) writeOutcome(ctx context.Context, run jobs.Run, rev int64) bool {
	if _, ok, err := r.a.store.UpdateRun(ctx, run, rev); err == nil && ok {
		return true
	}
	runs, err := r.a.store.Runs(ctx)
	if err != nil {
		return false
	}
	for _, cur := range runs[run.Job] {
		if cur.Key() == run.Key() {
			_, ok, err := r.a.store.UpdateRun(ctx, run, cur.Revision)
			return err == nil && ok
		}
	}
	return false
}

// recordOutcomes writes the outcomes the store did not take before.
func (r *jobRunner) recordOutcomes(ctx context.Context, runs map[string][]jobs.Run) {
	r.mu.Lock()
	pending := make([]jobs.Run, 0, len(r.unrecorded))
	for _, run := range r.unrecorded {
		pending = append(pending, run)
	}
	r.mu.Unlock()
	for _, run := range pending {
		for _, cur := range runs[run.Job] {
			if cur.Key() != run.Key() {
				continue
			}
			if _, ok, err := r.a.store.UpdateRun(ctx, run, cur.Revision); err == nil && ok {
				r.mu.Lock()
				delete(r.unrecorded, run.Key())
				r.mu.Unlock()
				r.a.log.Info("job run outcome recorded late", "job", run.Job, "status", run.Status)
			}
		}
	}
}

// backupSince returns the newest backup of the job's kind that started
// at or after since ("" when none, or for a kind that makes no backup),
// from the repository's own list.
func (r *jobRunner) backupSince(ctx context.Context, j jobs.Job, since time.Time) string {
	if j.Kind != jobs.KindFull && j.Kind != jobs.KindIncr && j.Kind != jobs.KindLogical || since.IsZero() {
		return ""
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(lctx, r.a.exe, "backups", "-c", r.a.configPath, "-o", "json").Output()
	if err != nil {
		r.a.log.Warn("cannot list the repository to find an interrupted run's backup", "job", j.ID, "err", err)
		return ""
	}
	var list []struct {
		ID        string    `json:"id"`
		Kind      string    `json:"kind"`
		StartTime time.Time `json:"start_time"`
	}
	if json.Unmarshal(out, &list) != nil {
		return ""
	}
	best := ""
	var bestAt time.Time
	for _, b := range list {
		// A second of slack: the run's start was taken before the
		// command started, on this same clock.
		if b.Kind == string(j.Kind) && !b.StartTime.Before(since.Add(-time.Second)) && (best == "" || b.StartTime.After(bestAt)) {
			best, bestAt = b.ID, b.StartTime
		}
	}
	return best
}

// publishProgress writes the command's latest progress into the run's
// record every two seconds while it runs, so `jobs runs` shows it. It stops
// at the first update that loses to another writer (an operator's stop
// request): the end state is written over it anyway. The returned function
// stops it and waits, so run and rev are the caller's again.
func (r *jobRunner) publishProgress(ctx context.Context, run *jobs.Run, rev *int64, w *progressWriter) func() {
	return every(ctx, 2*time.Second, func() bool {
		p, ok := w.take()
		if !ok {
			return true
		}
		next := *run
		next.Progress = p
		sctx, cancel := context.WithTimeout(ctx, r.a.storeTimeout())
		defer cancel()
		nrev, ok, err := r.a.store.UpdateRun(sctx, next, *rev)
		if err != nil || !ok {
			return false
		}
		*run, *rev = next, nrev
		return true
	})
}

// commandArgs is the pgguard command line of a job kind.
func (r *jobRunner) commandArgs(j jobs.Job, leader string, attempt int) ([]string, error) {
	cfg := r.a.configPath
	channels := strconv.Itoa(max(j.Options.Channels, 1))
	if j.Options.Channels == 0 {
		channels = "4"
	}
	args, err := r.kindArgs(j, leader, cfg, channels)
	if err == nil && j.Kind.IsRestore() {
		args, err = r.restoreArgs(j, cfg, channels, attempt)
	}
	if err == nil && j.Options.RateLimit != "" {
		args = append(args, "--rate-limit", j.Options.RateLimit)
	}
	if err == nil && j.Options.ReadLimit != "" && (j.Kind == jobs.KindFull || j.Kind == jobs.KindIncr) {
		args = append(args, "--read-limit", j.Options.ReadLimit)
	}
	if err == nil && j.Options.WriteLimit != "" && (j.Kind == jobs.KindDrill || j.Kind == jobs.KindRestore) {
		args = append(args, "--write-limit", j.Options.WriteLimit)
	}
	return args, err
}

func (r *jobRunner) kindArgs(j jobs.Job, leader, cfg, channels string) ([]string, error) {
	switch j.Kind {
	case jobs.KindFull, jobs.KindIncr:
		args := []string{"backup", string(j.Kind), "-c", cfg, "-o", "json", "--channels", channels}
		if leader != r.a.cfg.Name {
			args = append(args, "--from-standby")
		}
		return args, nil
	case jobs.KindPrune:
		args := []string{"prune", "-c", cfg, "-o", "json", "--keep", strconv.Itoa(j.Options.Keep)}
		if j.Options.KeepDays > 0 {
			args = append(args, "--keep-days", strconv.Itoa(j.Options.KeepDays))
		}
		if j.Options.WAL != "" {
			args = append(args, "--wal", j.Options.WAL)
		}
		return args, nil
	case jobs.KindVerify:
		return []string{"verify", "-c", cfg, "--all", "-o", "json"}, nil
	case jobs.KindLogical:
		args := []string{"backup", "logical", "-c", cfg, "-o", "json", "--db", j.Options.DB}
		if j.Options.Schema != "" {
			args = append(args, "--schema", j.Options.Schema)
		}
		if j.Options.Table != "" {
			args = append(args, "--table", j.Options.Table)
		}
		return args, nil
	case jobs.KindCopy:
		which := []string{"--all"}
		if j.Options.Newest > 0 {
			which = []string{"--newest", strconv.Itoa(j.Options.Newest)}
		}
		args := append([]string{"copy", "-c", cfg, "-o", "json", "--channels", channels, "--to-repo", j.Options.ToRepo}, which...)
		if j.Options.WAL != "" {
			args = append(args, "--wal", j.Options.WAL)
		}
		return args, nil
	case jobs.KindDrill:
		args := []string{"drill", "-c", cfg, "-o", "json", "--channels", channels}
		for _, c := range j.Options.Checks {
			args = append(args, "--check", c)
		}
		return args, nil
	case jobs.KindRestore, jobs.KindRestoreLogical, jobs.KindRestoreWAL:
		return nil, nil // restoreArgs
	}
	return nil, fmt.Errorf("job kind %s is not available in this build yet", j.Kind)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// restoreArgs is the command line of a restore kind. A physical restore
// never writes into this node's own data directory, never archives into
// the cluster's repository (the restored copy's archive_mode is off), and
// resumes with --delta when the run is a later attempt (its node restarted
// meanwhile).
func (r *jobRunner) restoreArgs(j jobs.Job, cfg, channels string, attempt int) ([]string, error) {
	o := j.Options
	switch j.Kind {
	case jobs.KindRestore:
		data := filepath.Clean(r.a.cfg.Postgres.DataDir)
		dir := filepath.Clean(o.TargetDir)
		if rel, err := filepath.Rel(data, dir); err == nil && !strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("target dir %s is this node's data directory or inside it: restore elsewhere", o.TargetDir)
		}
		if rel, err := filepath.Rel(dir, data); err == nil && !strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("target dir %s holds this node's data directory: restore elsewhere", o.TargetDir)
		}
		args := []string{"restore", "-c", cfg, "-o", "json", "--channels", channels, "--target-dir", o.TargetDir, "--archive-mode", "off"}
		for flag, v := range map[string]string{"--backup": o.Backup, "--time": o.TargetTime, "--lsn": o.TargetLSN, "--xid": o.TargetXID, "--name": o.TargetName} {
			if v != "" {
				args = append(args, flag, v)
			}
		}
		if o.TargetImmediate {
			args = append(args, "--immediate")
		}
		if o.Standby {
			args = append(args, "--standby")
		}
		if attempt > 1 {
			args = append(args, "--delta")
		}
		return args, nil
	case jobs.KindRestoreLogical:
		args := []string{"restore", "logical", "-c", cfg, "-o", "json", "--db", o.DB}
		for flag, v := range map[string]string{"--schema": o.Schema, "--table": o.Table, "--into": o.Into, "--backup": o.Backup} {
			if v != "" {
				args = append(args, flag, v)
			}
		}
		return args, nil
	case jobs.KindRestoreWAL:
		return []string{"restore", "wal", "-c", cfg, "-o", "json", "--from", o.From, "--to", o.To, "--target-dir", o.TargetDir}, nil
	}
	return nil, fmt.Errorf("job kind %s is not a restore", j.Kind)
}

// cliError is the last error line pgguard printed ("pgguard: ..."), the
// reason a job's command failed, for the run's message and the alarm.
func cliError(log string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if why, ok := strings.CutPrefix(strings.TrimSpace(lines[i]), "pgguard: "); ok {
			return tail(why, 300)
		}
	}
	return ""
}
