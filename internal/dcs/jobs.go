package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrExists means a record with that key is already there.
var ErrExists = errors.New("already exists")

// PutJob stores a job. With create it fails with ErrExists when the id is
// taken; without, it replaces the version read at j.Revision (as Jobs
// returns it) and fails with ErrChanged when the job was edited or deleted
// since.
func (s *Store) PutJob(ctx context.Context, j jobs.Job, create bool) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	rel := "jobs/" + j.ID
	if !create {
		if j.Revision == 0 {
			return fmt.Errorf("replace job %s: no revision to compare with: read the job first", j.ID)
		}
		resp, err := s.cli.Txn(ctx).If(s.atRevision(rel, j.Revision)).
			Then(clientv3.OpPut(s.key(rel), string(data))).Else(s.getRev(rel)).Commit()
		if err != nil {
			return fmt.Errorf("replace job %s: %w", j.ID, err)
		}
		if !resp.Succeeded {
			return fmt.Errorf("replace job %s: %w", j.ID, changed(rel, j.Revision, resp.Responses[0]))
		}
		return nil
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.key(rel)), "=", 0)).
		Then(clientv3.OpPut(s.key(rel), string(data))).Commit()
	if err != nil {
		return fmt.Errorf("store job %s: %w", j.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("job %s: %w", j.ID, ErrExists)
	}
	return nil
}

// DeleteJob removes a job (its runs stay as history), unconditionally:
// the operator's 'jobs delete' means whatever version is there.
func (s *Store) DeleteJob(ctx context.Context, id string) (bool, error) {
	resp, err := s.cli.Delete(ctx, s.key("jobs", id))
	if err != nil {
		return false, err
	}
	return resp.Deleted > 0, nil
}

// Jobs lists every job.
func (s *Store) Jobs(ctx context.Context) ([]jobs.Job, error) {
	resp, err := s.cli.Get(ctx, s.key("jobs")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	var out []jobs.Job
	for _, kv := range resp.Kvs {
		var j jobs.Job
		if err := json.Unmarshal(kv.Value, &j); err != nil {
			return nil, fmt.Errorf("job record %s is unreadable: %w", kv.Key, err)
		}
		j.Revision = kv.ModRevision
		out = append(out, j)
	}
	return out, nil
}

// Runs returns every run record by job id, oldest trigger first.
func (s *Store) Runs(ctx context.Context) (map[string][]jobs.Run, error) {
	resp, err := s.cli.Get(ctx, s.key("runs")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	out := map[string][]jobs.Run{}
	for _, kv := range resp.Kvs {
		var r jobs.Run
		if json.Unmarshal(kv.Value, &r) != nil {
			continue
		}
		r.Revision = kv.ModRevision
		out[r.Job] = append(out[r.Job], r)
	}
	for id := range out {
		jobs.SortRuns(out[id])
	}
	return out, nil
}

// ClaimRun creates a run record; false means another node (or an earlier
// loop) already claimed that trigger and attempt.
func (s *Store) ClaimRun(ctx context.Context, r jobs.Run) (int64, bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, false, err
	}
	k := s.key("runs", r.Key())
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(data))).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("claim run %s: %w", r.Key(), err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

// UpdateRun rewrites a run record if it has not changed since rev; it
// returns the new revision, or false when someone else changed it (e.g. an
// operator asked it to stop).
func (s *Store) UpdateRun(ctx context.Context, r jobs.Run, rev int64) (int64, bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, false, err
	}
	k := s.key("runs", r.Key())
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
		Then(clientv3.OpPut(k, string(data))).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("update run %s: %w", r.Key(), err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

// WatchJobs signals, until ctx ends, whenever a job or a run record
// changes, and each time a watch (re)starts, since changes made while it
// was down are not replayed: a reader keeps the jobs and runs it last read
// until the next signal instead of reading them again every second.
// Signals coalesce.
func (s *Store) WatchJobs(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	for _, dir := range []string{"jobs", "runs"} {
		go s.watchPrefix(ctx, s.key(dir)+"/", signal)
	}
	return ch
}

// watchPrefix calls signal for every batch of changes under prefix, and
// once each time the watch (re)starts, as soon as it is in place.
func (s *Store) watchPrefix(ctx context.Context, prefix string, signal func()) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify()) {
			if resp.Err() != nil {
				break
			}
			// Created: what changed before the watch began is read
			// again, after it began, so nothing falls in between.
			if resp.Created || len(resp.Events) > 0 {
				signal()
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}
