package jobs

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/jobs/schedule"
)

var now = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

func daily(t *testing.T) schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse("daily@02:00", now.Add(-72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func job(t *testing.T, edit func(*Job)) Job {
	j := Job{ID: "nightly", Name: "nightly", Kind: KindFull, Schedule: daily(t), Enabled: true, Created: now.Add(-72 * time.Hour)}
	if edit != nil {
		edit(&j)
	}
	return j
}

func trigger(day int) time.Time { return time.Date(2026, 11, day, 2, 0, 0, 0, time.UTC) }

func TestPlan(t *testing.T) {
	cases := []struct {
		name  string
		self  string
		job   func(*Job)
		runs  []Run
		alive []string
		want  []StepKind
		check func(t *testing.T, s []Step)
	}{
		{name: "daily job due: the primary claims today's trigger", self: "n1",
			runs: []Run{{Job: "nightly", Trigger: trigger(22), Attempt: 1, Node: "n1", Status: Succeeded}},
			want: []StepKind{Claim},
			check: func(t *testing.T, s []Step) {
				if !s[0].Run.Trigger.Equal(trigger(23)) {
					t.Fatalf("claimed %s, want %s", s[0].Run.Trigger, trigger(23))
				}
			}},
		{name: "a standby claims nothing for a primary's job", self: "n2",
			runs: []Run{{Job: "nightly", Trigger: trigger(22), Attempt: 1, Node: "n1", Status: Succeeded}}},
		{name: "a trigger already claimed is not claimed again", self: "n1",
			runs: []Run{{Job: "nightly", Trigger: trigger(23), Attempt: 1, Node: "n1", Status: Succeeded}}},
		{name: "missed triggers: only the latest runs", self: "n1",
			want: []StepKind{Claim},
			check: func(t *testing.T, s []Step) {
				if !s[0].Run.Trigger.Equal(trigger(23)) {
					t.Fatalf("claimed %s, want only the latest %s", s[0].Run.Trigger, trigger(23))
				}
			}},
		{name: "run of a dead node is interrupted and resumed by the new primary", self: "n1", alive: []string{"n1"},
			runs: []Run{{Job: "nightly", Trigger: trigger(23), Attempt: 1, Node: "n2", Status: Running}},
			want: []StepKind{Interrupt},
			check: func(t *testing.T, s []Step) {
				if !s[0].Retry {
					t.Fatalf("interrupt without resume")
				}
			}},
		{name: "run of a live node is left alone", self: "n1", alive: []string{"n1", "n2"},
			runs: []Run{{Job: "nightly", Trigger: trigger(23), Attempt: 1, Node: "n2", Status: Running}}},
		{name: "own run left over from before a restart is interrupted and resumed", self: "n1", alive: []string{"n1"},
			runs: []Run{{Job: "nightly", Trigger: trigger(23), Attempt: 1, Node: "n1", Status: Running}},
			want: []StepKind{Interrupt}},
		{name: "disabled job is never claimed", self: "n1", job: func(j *Job) { j.Enabled = false }},
		{name: "manual job never fires by itself", self: "n1", job: func(j *Job) { j.Schedule = schedule.Schedule{Kind: schedule.Manual} }},
		{name: "a run started by hand is adopted by the runner", self: "n1", job: func(j *Job) { j.Schedule = schedule.Schedule{Kind: schedule.Manual} },
			runs: []Run{{Job: "nightly", Trigger: now, Attempt: 1, Status: Requested}},
			want: []StepKind{Adopt}},
		{name: "a job naming a standby runs there, not on the primary", self: "n2", job: func(j *Job) { j.Node = "n2" },
			want: []StepKind{Claim}},
		{name: "stop requested for our run: halt", self: "n1", alive: []string{"n1"},
			runs: []Run{{Job: "nightly", Trigger: trigger(23), Attempt: 1, Node: "n1", Status: Stopping}},
			want: []StepKind{Halt}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := job(t, tc.job)
			alive := map[string]bool{}
			for _, a := range tc.alive {
				alive[a] = true
			}
			active := map[string]bool{}
			for _, r := range tc.runs {
				if r.Node == tc.self && r.Status == Stopping {
					active[r.Key()] = true
				}
			}
			steps := Plan(View{Now: now, Self: tc.self, Leader: "n1", Alive: alive, Jobs: []Job{j},
				Runs: map[string][]Run{"nightly": tc.runs}, Active: active})
			var got []StepKind
			for _, s := range steps {
				got = append(got, s.Kind)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("steps = %v, want %v (%+v)", got, tc.want, steps)
			}
			if tc.check != nil {
				tc.check(t, steps)
			}
		})
	}
}

func TestJobValidateNamesTheField(t *testing.T) {
	j := Job{ID: "Bad ID", Kind: "snapshot", Schedule: schedule.Schedule{Kind: schedule.Weekly}}
	err := j.Validate()
	if err == nil {
		t.Fatal("expected an error")
	}
	for _, want := range []string{"id", "kind", "schedule"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not name %s", err, want)
		}
	}
}
