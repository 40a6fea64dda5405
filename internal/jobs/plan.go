package jobs

import (
	"fmt"
	"time"
)

// View is what one node knows when it plans: the store's jobs and runs,
// who leads, who is alive, and which runs this node is executing.
type View struct {
	Now    time.Time
	Self   string
	Leader string
	Alive  map[string]bool
	Jobs   []Job
	Runs   map[string][]Run // by job id
	// Active holds the keys of the runs this node executes right now.
	Active map[string]bool
}

// Step kinds.
type StepKind string

const (
	Claim     StepKind = "claim"     // create the run record for a due trigger and execute it
	Adopt     StepKind = "adopt"     // execute a run requested by hand
	Interrupt StepKind = "interrupt" // mark a run whose node is gone; a new attempt follows
	Halt      StepKind = "halt"      // stop a run of ours an operator asked to stop
)

// Step is one thing the runner must do.
type Step struct {
	Kind   StepKind
	Job    Job
	Run    Run
	Reason string
	// Retry (Interrupt only): claim the next attempt of the same trigger.
	Retry bool
}

// runner is the member that runs job now.
func runner(j Job, leader string) string {
	if j.Node != "" {
		return j.Node
	}
	return leader
}

// Plan decides, for one node at one instant, which runs to claim, adopt,
// interrupt or stop. Each trigger is claimed at most once per attempt; a
// run left "running" by a node that is gone (or by this node before it
// restarted) is marked interrupted and claimed again as the next attempt,
// so an interrupted run is resumed, never silently lost. Only the latest
// due trigger of a job is run: a cluster that was down through several
// triggers catches up once, not once per missed trigger.
func Plan(v View) []Step {
	var steps []Step
	for _, j := range v.Jobs {
		runs := v.Runs[j.ID]
		mine := runner(j, v.Leader) == v.Self
		busy := false
		var last *Run
		for i := range runs {
			r := runs[i]
			if last == nil || r.Trigger.After(last.Trigger) || (r.Trigger.Equal(last.Trigger) && r.Attempt > last.Attempt) {
				last = &runs[i]
			}
			switch {
			case r.Status == Stopping && r.Node == v.Self:
				steps = append(steps, Step{Kind: Halt, Job: j, Run: r, Reason: "stop requested"})
				busy = true
			case (r.Status == Running || r.Status == Stopping) && r.Node == v.Self && !v.Active[r.Key()]:
				steps = append(steps, interrupt(j, r, "this node restarted during the run", mine))
				busy = mine
			case (r.Status == Running || r.Status == Stopping) && r.Node != v.Self && !v.Alive[r.Node] && mine:
				steps = append(steps, interrupt(j, r, "node "+r.Node+" is gone", true))
				busy = true
			case r.Status == Running || r.Status == Stopping:
				busy = true
			case r.Status == Requested && mine:
				steps = append(steps, Step{Kind: Adopt, Job: j, Run: r, Reason: "started by hand"})
				busy = true
			}
		}
		if !mine || busy || !j.Enabled {
			continue
		}
		after := j.Created.Add(-time.Nanosecond)
		if last != nil {
			after = last.Trigger
		}
		next, ok := j.Schedule.Next(after)
		if !ok || next.After(v.Now) {
			continue
		}
		for {
			later, ok := j.Schedule.Next(next)
			if !ok || later.After(v.Now) {
				break
			}
			next = later
		}
		steps = append(steps, Step{Kind: Claim, Job: j, Run: Run{Job: j.ID, Trigger: next, Attempt: 1, Node: v.Self, Status: Running},
			Reason: fmt.Sprintf("trigger %s is due", next.Format(time.RFC3339))})
	}
	return steps
}

// interrupt marks r interrupted and, when this node is the job's runner,
// claims the next attempt of the same trigger.
func interrupt(j Job, r Run, why string, retry bool) Step {
	s := Step{Kind: Interrupt, Job: j, Run: r, Reason: why, Retry: retry}
	if retry {
		s.Reason += "; resuming as attempt " + fmt.Sprint(r.Attempt+1)
	}
	return s
}
