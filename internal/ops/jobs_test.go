package ops

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
)

type fakeJobs struct {
	jobs    map[string]jobs.Job
	runs    map[string][]jobs.Run
	history []dcs.Event
}

func (f *fakeJobs) PutJob(_ context.Context, j jobs.Job, create bool) error {
	if _, ok := f.jobs[j.ID]; ok == create {
		if create {
			return fmt.Errorf("job %s: %w", j.ID, dcs.ErrExists)
		}
		return fmt.Errorf("job %s is gone", j.ID)
	}
	f.jobs[j.ID] = j
	return nil
}
func (f *fakeJobs) DeleteJob(_ context.Context, id string) (bool, error) {
	_, ok := f.jobs[id]
	delete(f.jobs, id)
	return ok, nil
}
func (f *fakeJobs) Jobs(context.Context) ([]jobs.Job, error) {
	var out []jobs.Job
	for _, j := range f.jobs {
		out = append(out, j)
	}
	return out, nil
}
func (f *fakeJobs) Runs(context.Context) (map[string][]jobs.Run, error) { return f.runs, nil }
func (f *fakeJobs) ClaimRun(_ context.Context, r jobs.Run) (int64, bool, error) {
	f.runs[r.Job] = append(f.runs[r.Job], r)
	return 1, true, nil
}
func (f *fakeJobs) UpdateRun(_ context.Context, r jobs.Run, _ int64) (int64, bool, error) {
	f.runs[r.Job][len(f.runs[r.Job])-1] = r
	return 2, true, nil
}
func (f *fakeJobs) AppendHistory(_ context.Context, e dcs.Event) error {
	f.history = append(f.history, e)
	return nil
}

func TestJobOperationsValidateRecordAndRefuse(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f := &fakeJobs{jobs: map[string]jobs.Job{}, runs: map[string][]jobs.Run{}}
	o := &Jobs{Store: f, By: "alice@host", Now: func() time.Time { return now }}
	ctx := context.Background()
	nightly := func(j *jobs.Job) error {
		s, err := schedule.Parse("daily@02:00", now)
		j.Kind, j.Schedule = jobs.KindFull, s
		return err
	}
	if _, err := o.Create(ctx, "nightly", nightly); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Create(ctx, "nightly", nightly); !IsInput(err) {
		t.Fatalf("a second job with the same id: %v, want bad input", err)
	}
	if _, err := o.Create(ctx, "Bad Id", nightly); !IsInput(err) || len(f.jobs) != 1 {
		t.Fatalf("an invalid id: %v (jobs %d)", err, len(f.jobs))
	}
	if _, err := o.Edit(ctx, "nosuch", nightly); !IsInput(err) {
		t.Fatalf("editing an unknown job: %v", err)
	}
	if _, err := o.Clone(ctx, "nightly", "nightly-2"); err != nil || len(f.jobs) != 2 {
		t.Fatalf("clone: %v (jobs %d)", err, len(f.jobs))
	}
	if _, err := o.Clone(ctx, "nightly-2", "nightly"); !IsInput(err) || !strings.Contains(err.Error(), `job "nightly" exists`) || len(f.jobs) != 2 {
		t.Fatalf("a clone onto an existing id: %v (jobs %d), want bad input naming the id", err, len(f.jobs))
	}
	if _, err := o.Stop(ctx, "nightly"); !IsInput(err) {
		t.Fatalf("stopping a job with no run: %v", err)
	}
	if _, err := o.Start(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	if r, err := o.Stop(ctx, "nightly"); err != nil || r.Status != jobs.Stopping {
		t.Fatalf("stop: %+v %v", r, err)
	}
	if err := o.Delete(ctx, "nightly-2"); err != nil {
		t.Fatal(err)
	}
	want := []ha.Kind{ha.EventJobCreate, ha.EventJobCreate, ha.EventJobStart, ha.EventJobStop, ha.EventJobDelete}
	if len(f.history) != len(want) {
		t.Fatalf("history %+v, want %v", f.history, want)
	}
	for i, e := range f.history {
		if e.Action != want[i] || e.By != "alice@host" {
			t.Fatalf("history entry %d: %+v, want %s by alice@host", i, e, want[i])
		}
	}
}
