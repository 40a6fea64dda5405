package alerts

import (
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
)

// Cluster-wide conditions are seen alike by every member (they come from
// the store), so one member sends them: the holder of the leader key, the
// one member the store lets act for the cluster; without a holder (an
// election, a cluster without a primary), the first member by name whose
// record is fresh. Every agent computes Sender from its own read; two may
// disagree for a moment while the lease moves, never for long.

// Sender names the member that sends cluster-wide conditions ("" when no
// member's record is fresh).
func Sender(c ha.Cluster, now time.Time, ttl time.Duration) string {
	if c.Leader != nil && c.Leader.Name != "" {
		return c.Leader.Name
	}
	for _, name := range c.MemberNames() {
		m := c.Members[name]
		if m.Role != ha.RoleWitness && !stale(m, now, ttl) {
			return name
		}
	}
	return ""
}

// View is what the conditions are judged from: one read of the store.
type View struct {
	Cluster ha.Cluster
	Now     time.Time
	// TTL is the leader lease: a member record older than it is stale
	// (status shows it unreachable) and claims nothing.
	TTL time.Duration
	// Jobs and Runs are the cluster's jobs and their runs, read at
	// JobsNow on the jobs' clock (JobsNow zero: not read, no backup-age
	// condition judged).
	Jobs    []jobs.Job
	Runs    map[string][]jobs.Run
	JobsNow time.Time
	// MaxAge bounds the age of the newest successful run of a backup
	// kind (alerts.backup_max_age); a kind without one is overdue when
	// its job's schedule fired twice since that run.
	MaxAge map[jobs.Kind]time.Duration
}

// Conditions lists the cluster-wide conditions that hold in v: split
// members and overdue backups.
func Conditions(v View) []Alert {
	out := splitConditions(v)
	if !v.JobsNow.IsZero() {
		out = append(out, backupAgeConditions(v)...)
	}
	return out
}

// splitConditions: more than one fresh member record says primary (the
// store's leader key allows one: a second means a fence did not happen),
// or a member's data directory diverged from the cluster's (its state
// "split": it needs 'ctl reinit'). Both must hold for two lease periods
// before they are sent: a record a switchover has not yet rewritten is
// not a split.
func splitConditions(v View) []Alert {
	var primaries, diverged []string
	for _, name := range v.Cluster.MemberNames() {
		m := v.Cluster.Members[name]
		if stale(m, v.Now, v.TTL) {
			continue
		}
		switch {
		case m.Role == ha.RolePrimary:
			primaries = append(primaries, name)
		case m.State == "split":
			diverged = append(diverged, name)
		}
	}
	hold := 2 * v.TTL
	var out []Alert
	if len(primaries) > 1 {
		leader := "none"
		if v.Cluster.Leader != nil {
			leader = v.Cluster.Leader.Name
		}
		out = append(out, Alert{Kind: KindSplit, Severity: Critical, Condition: true, For: hold, Time: v.Now,
			Summary: fmt.Sprintf("split: %s run as primary at once (leader key: %s)", strings.Join(primaries, ", "), leader),
			Details: "every member but the leader-key holder should have fenced itself; 'pgguard ctl status' shows each member"})
	}
	for _, name := range diverged {
		m := v.Cluster.Members[name]
		out = append(out, Alert{Kind: KindSplit, Severity: Critical, Subject: name, Condition: true, For: hold, Time: v.Now,
			Summary: fmt.Sprintf("split: %s's data diverged from the cluster's", name), Details: m.Problem})
	}
	return out
}

// backupAgeConditions: for every enabled job of a backup kind on a
// repeating schedule, the newest successful run is too old. The limit is
// alerts.backup_max_age for the kind when set, measured from that run's
// trigger; otherwise the job is overdue once its schedule fired twice
// since that trigger (about twice its interval: one run missed or failed
// is a job-failed alert, two in a row is a backup too old). A job that
// never succeeded counts from its creation.
func backupAgeConditions(v View) []Alert {
	var out []Alert
	for _, j := range v.Jobs {
		if !j.Enabled || !backupKind(j.Kind) || !repeats(j.Schedule) {
			continue
		}
		last, ok := lastSuccess(v.Runs[j.ID])
		since := j.Created
		if ok {
			since = last.Trigger
		}
		if since.IsZero() || !v.JobsNow.After(since) {
			continue
		}
		age := v.JobsNow.Sub(since).Round(time.Second)
		what := "no successful run since it was created " + age.String() + " ago"
		if ok {
			what = fmt.Sprintf("its newest successful run was triggered %s ago (%s)", age, since.UTC().Format(time.RFC3339))
		}
		var why string
		if limit, set := v.MaxAge[j.Kind]; set && limit > 0 {
			if age <= limit {
				continue
			}
			why = fmt.Sprintf("over alerts.backup_max_age.%s (%s)", j.Kind, limit)
		} else {
			missed := j.Schedule.Between(since.Add(time.Nanosecond), v.JobsNow, 2)
			if len(missed) < 2 {
				continue
			}
			why = fmt.Sprintf("its schedule (%s) fired at %s and %s since", j.Schedule.Format(),
				missed[0].UTC().Format(time.RFC3339), missed[1].UTC().Format(time.RFC3339))
		}
		out = append(out, Alert{Kind: KindBackupAge, Severity: Warning, Subject: j.ID, Condition: true, Time: v.Now,
			Summary: fmt.Sprintf("backup too old: %s backup job %s: %s", j.Kind, j.ID, what),
			Details: why + "\n'pgguard jobs runs " + j.ID + "' shows its runs"})
	}
	return out
}

func backupKind(k jobs.Kind) bool {
	return k == jobs.KindFull || k == jobs.KindIncr || k == jobs.KindLogical
}

func repeats(s schedule.Schedule) bool {
	switch s.Kind {
	case schedule.Hourly, schedule.Daily, schedule.Weekly, schedule.Monthly:
		return true
	}
	return false
}

func lastSuccess(runs []jobs.Run) (jobs.Run, bool) {
	var best jobs.Run
	found := false
	for _, r := range runs {
		if r.Status == jobs.Succeeded && (!found || r.Trigger.After(best.Trigger)) {
			best, found = r, true
		}
	}
	return best, found
}

// stale: the record is older than a live member lets its record grow
// (its lease outlives a member that died by up to a TTL).
func stale(m ha.Member, now time.Time, ttl time.Duration) bool {
	return ttl > 0 && now.Sub(m.UpdatedAt) > ha.MemberRecordMaxAge(ttl)
}
