package jobs

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJob prints one job as a line of text.
func WriteJob(out io.Writer, j Job, now time.Time) error {
	next, ok := j.Schedule.Next(now)
	nextS := "never"
	if ok && j.Enabled {
		nextS = next.Format(time.RFC3339)
	}
	_, err := fmt.Fprintf(out, "job %s (%s): %s, schedule %s [%s], runs on %s, enabled %v, next %s\n",
		j.ID, j.Name, j.Kind, j.Schedule.String(), j.Schedule.Format(), runsOn(j), j.Enabled, nextS)
	return err
}

// WriteJobs prints the jobs as a table with their next and last runs.
func WriteJobs(out io.Writer, list []Job, runs map[string][]Run, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSCHEDULE\tNODE\tENABLED\tNEXT\tLAST RUN")
	for _, j := range list {
		next, ok := j.Schedule.Next(now)
		nextS := "-"
		if ok && j.Enabled {
			nextS = next.Format("2006-01-02 15:04 MST")
		}
		last := "-"
		if rs := runs[j.ID]; len(rs) > 0 {
			r := rs[len(rs)-1]
			last = fmt.Sprintf("%s %s", r.Status, r.Trigger.Format("2006-01-02 15:04"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", j.ID, j.Kind, j.Schedule.Format(), runsOn(j), j.Enabled, nextS, last)
	}
	return tw.Flush()
}

// WriteRuns prints runs as a table; a run under way shows its progress.
func WriteRuns(out io.Writer, runs []Run, human func(int64) string, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tTRIGGER\tTRY\tNODE\tSTATUS\tTOOK\tREAD\tSTORED\tSPEED\tMESSAGE")
	for _, r := range runs {
		took := "-"
		if !r.Ended.IsZero() {
			took = r.Ended.Sub(r.Started).Round(time.Millisecond).String()
		}
		msg := strings.TrimSpace(r.Message)
		if r.Progress != nil && r.Ended.IsZero() {
			took = now.Sub(r.Started).Round(time.Second).String() + "…"
			msg = r.Progress.String(human)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s/s\t%s\n", r.Job, r.Trigger.Format("2006-01-02 15:04:05"), r.Attempt, r.Node,
			r.Status, took, human(r.BytesRead), human(r.BytesStored), human(int64(r.Speed)), msg)
	}
	return tw.Flush()
}

func runsOn(j Job) string {
	if j.Node == "" {
		return "(primary)"
	}
	return j.Node
}
