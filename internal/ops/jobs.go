package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
)

// JobStore is what the job operations need of the store.
type JobStore interface {
	PutJob(ctx context.Context, j jobs.Job, create bool) error
	DeleteJob(ctx context.Context, id string) (bool, error)
	Jobs(ctx context.Context) ([]jobs.Job, error)
	Runs(ctx context.Context) (map[string][]jobs.Run, error)
	ClaimRun(ctx context.Context, r jobs.Run) (int64, bool, error)
	UpdateRun(ctx context.Context, r jobs.Run, rev int64) (int64, bool, error)
	AppendHistory(ctx context.Context, e dcs.Event) error
}

// Jobs runs the job operations (create, edit, clone, delete, start, stop)
// and reads jobs and their runs. Every change is recorded in the history
// with who made it.
type Jobs struct {
	Store JobStore
	By    string
	Now   func() time.Time // default time.Now
}

func (o *Jobs) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o *Jobs) record(ctx context.Context, kind ha.Kind, id, reason string) {
	_ = o.Store.AppendHistory(ctx, dcs.Event{Node: "ctl", Action: kind, Target: id, Reason: reason, By: o.By, Result: "ok"})
}

// List returns the jobs and their runs.
func (o *Jobs) List(ctx context.Context) ([]jobs.Job, map[string][]jobs.Run, error) {
	list, err := o.Store.Jobs(ctx)
	if err != nil {
		return nil, nil, err
	}
	runs, err := o.Store.Runs(ctx)
	return list, runs, err
}

// Get returns one job.
func (o *Jobs) Get(ctx context.Context, id string) (jobs.Job, error) {
	list, err := o.Store.Jobs(ctx)
	if err != nil {
		return jobs.Job{}, err
	}
	for _, j := range list {
		if j.ID == id {
			return j, nil
		}
	}
	return jobs.Job{}, badInput("no job %q ('pgguard jobs list' shows them)", id)
}

// Create stores a new job; edit fills it in from a blank job with the id
// (enabled, named after it). The job must validate.
func (o *Jobs) Create(ctx context.Context, id string, edit func(*jobs.Job) error) (jobs.Job, error) {
	now := o.now()
	j := jobs.Job{ID: id, Name: id, Enabled: true, Created: now}
	if err := edit(&j); err != nil {
		return j, asInput(err)
	}
	j.Updated = now
	return o.put(ctx, j, true, ha.EventJobCreate, fmt.Sprintf("%s, schedule %s", j.Kind, j.Schedule.Format()))
}

// Edit changes a job; the store refuses the write if the job changed since
// it was read.
func (o *Jobs) Edit(ctx context.Context, id string, edit func(*jobs.Job) error) (jobs.Job, error) {
	j, err := o.Get(ctx, id)
	if err != nil {
		return j, err
	}
	if err := edit(&j); err != nil {
		return j, asInput(err)
	}
	j.Updated = o.now()
	return o.put(ctx, j, false, ha.EventJobEdit, fmt.Sprintf("%s, schedule %s, enabled %v", j.Kind, j.Schedule.Format(), j.Enabled))
}

// Clone copies a job under a new id.
func (o *Jobs) Clone(ctx context.Context, id, newID string) (jobs.Job, error) {
	j, err := o.Get(ctx, id)
	if err != nil {
		return j, err
	}
	now := o.now()
	j.ID, j.Name, j.Created, j.Updated = newID, newID, now, now
	return o.put(ctx, j, true, ha.EventJobCreate, "clone of "+id)
}

// put validates j and stores it (create: only under an id no job has; else
// only if the job did not change since it was read), then records kind.
func (o *Jobs) put(ctx context.Context, j jobs.Job, create bool, kind ha.Kind, reason string) (jobs.Job, error) {
	if err := j.Validate(); err != nil {
		return j, badinput.Wrap(err)
	}
	if err := o.Store.PutJob(ctx, j, create); err != nil {
		if create && errors.Is(err, dcs.ErrExists) {
			return j, badInput("job %q exists: use 'jobs edit' or choose another id", j.ID)
		}
		return j, err
	}
	o.record(ctx, kind, j.ID, reason)
	return j, nil
}

// Delete removes a job; its runs stay as history.
func (o *Jobs) Delete(ctx context.Context, id string) error {
	ok, err := o.Store.DeleteJob(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return badInput("no job %q", id)
	}
	o.record(ctx, ha.EventJobDelete, id, "")
	return nil
}

// Start requests a run of a job now, on its runner node.
func (o *Jobs) Start(ctx context.Context, id string) (jobs.Run, error) {
	j, err := o.Get(ctx, id)
	if err != nil {
		return jobs.Run{}, err
	}
	run := jobs.Run{Job: j.ID, Trigger: o.now(), Attempt: 1, Status: jobs.Requested}
	if _, ok, err := o.Store.ClaimRun(ctx, run); err != nil || !ok {
		return run, fmt.Errorf("start job %s: %v", j.ID, err)
	}
	o.record(ctx, ha.EventJobStart, j.ID, "run requested by hand")
	return run, nil
}

// Stop asks the node running a job's run to stop it.
func (o *Jobs) Stop(ctx context.Context, id string) (jobs.Run, error) {
	runs, err := o.Store.Runs(ctx)
	if err != nil {
		return jobs.Run{}, err
	}
	for _, r := range runs[id] {
		if r.Status == jobs.Running || r.Status == jobs.Requested {
			r.Status = jobs.Stopping
			if _, ok, err := o.Store.UpdateRun(ctx, r, r.Revision); err != nil || !ok {
				return r, fmt.Errorf("stop run %s: it changed meanwhile, try again (%v)", r.Key(), err)
			}
			o.record(ctx, ha.EventJobStop, id, "stop of run "+r.Key())
			return r, nil
		}
	}
	return jobs.Run{}, badInput("job %q has no running run", id)
}

// Runs lists the runs of one job (id) or of all, oldest first.
func (o *Jobs) Runs(ctx context.Context, id string) ([]jobs.Run, error) {
	runs, err := o.Store.Runs(ctx)
	if err != nil {
		return nil, err
	}
	var out []jobs.Run
	for job, rs := range runs {
		if id == "" || id == job {
			out = append(out, rs...)
		}
	}
	jobs.SortRuns(out)
	return out, nil
}

// asInput marks an error of an operator's edit as bad input.
func asInput(err error) error {
	if IsInput(err) {
		return err
	}
	return badinput.Wrap(err)
}
