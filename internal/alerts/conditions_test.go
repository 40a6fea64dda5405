package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
)

const ttl = 3 * time.Second

func member(name string, role ha.Role, age time.Duration) ha.Member {
	state := "running"
	if role == ha.RoleStandby {
		state = "streaming"
	}
	return ha.Member{Name: name, Role: role, State: state, Healthy: true, UpdatedAt: t0.Add(-age)}
}

func clusterOf(leader string, members ...ha.Member) ha.Cluster {
	c := ha.Cluster{SystemID: "42", Members: map[string]ha.Member{}}
	if leader != "" {
		c.Leader = &ha.Leader{Name: leader}
	}
	for _, m := range members {
		c.Members[m.Name] = m
	}
	return c
}

func TestSenderIsTheLeaseHolderOrElseTheFirstLiveMember(t *testing.T) {
	cases := []struct {
		name string
		c    ha.Cluster
		want string
	}{
		{"the leader-key holder sends", clusterOf("n2", member("n1", ha.RoleStandby, 0), member("n2", ha.RolePrimary, 0)), "n2"},
		{"without a holder, the first member by name with a fresh record", clusterOf("", member("n1", ha.RoleNone, ha.MemberRecordMaxAge(ttl)+time.Second), member("n2", ha.RoleStandby, time.Second), member("n3", ha.RoleStandby, 0)), "n2"},
		{"a witness never sends", clusterOf("", member("a-witness", ha.RoleWitness, 0), member("n2", ha.RoleStandby, 0)), "n2"},
		{"nobody when every record is stale", clusterOf("", member("n1", ha.RoleStandby, time.Minute)), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sender(tc.c, t0, ttl); got != tc.want {
				t.Fatalf("sender %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSplitConditions(t *testing.T) {
	diverged := member("n3", ha.RoleNone, 0)
	diverged.State, diverged.Problem = "split", "data directory belongs to system 7, not the cluster's 42: run 'pgguard ctl reinit n3'"
	cases := []struct {
		name string
		c    ha.Cluster
		want []string // keys' subjects and summaries, in part
	}{
		{"one primary: nothing", clusterOf("n1", member("n1", ha.RolePrimary, 0), member("n2", ha.RoleStandby, 0)), nil},
		{"two fresh primaries: a split", clusterOf("n1", member("n1", ha.RolePrimary, 0), member("n2", ha.RolePrimary, time.Second)),
			[]string{"split: n1, n2 run as primary at once (leader key: n1)"}},
		{"a stale record of a dead primary is no split", clusterOf("n2", member("n1", ha.RolePrimary, ha.MemberRecordMaxAge(ttl)+time.Second), member("n2", ha.RolePrimary, 0)), nil},
		{"a member whose data diverged", clusterOf("n1", member("n1", ha.RolePrimary, 0), diverged),
			[]string{"split: n3's data diverged from the cluster's"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Conditions(View{Cluster: tc.c, Now: t0, TTL: ttl})
			if len(got) != len(tc.want) {
				t.Fatalf("conditions %+v, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if got[i].Kind != KindSplit || got[i].Severity != Critical || !strings.Contains(got[i].Summary, w) || got[i].For != 2*ttl {
					t.Errorf("condition %+v, want a critical split held %s saying %q", got[i], 2*ttl, w)
				}
			}
		})
	}
}

func TestBackupAgeConditions(t *testing.T) {
	created := t0.Add(-30 * 24 * time.Hour)
	daily := func(id string, kind jobs.Kind) jobs.Job {
		return jobs.Job{ID: id, Kind: kind, Enabled: true, Created: created,
			Schedule: schedule.Schedule{Kind: schedule.Daily, TimeOfDay: schedule.Clock(1, 0), Start: created}}
	}
	succeeded := func(job string, trigger time.Time) jobs.Run {
		return jobs.Run{Job: job, Trigger: trigger, Attempt: 1, Status: jobs.Succeeded, Ended: trigger.Add(time.Hour)}
	}
	failed := func(job string, trigger time.Time) jobs.Run {
		return jobs.Run{Job: job, Trigger: trigger, Attempt: 1, Status: jobs.Failed, Ended: trigger.Add(time.Minute)}
	}
	day := func(n int) time.Time { return time.Date(2026, 11, 23+n, 1, 0, 0, 0, time.UTC) } // day(0): today 01:00, before t0 (10:00)
	disabled := daily("off", jobs.KindFull)
	disabled.Enabled = false
	manual := daily("by-hand", jobs.KindFull)
	manual.Schedule = schedule.Schedule{Kind: schedule.Manual}
	cases := []struct {
		name   string
		jobs   []jobs.Job
		runs   []jobs.Run
		maxAge map[jobs.Kind]time.Duration
		want   []string // overdue job ids
	}{
		{"last night's backup succeeded", []jobs.Job{daily("nightly", jobs.KindFull)}, []jobs.Run{succeeded("nightly", day(0))}, nil, nil},
		{"one night failed: a job-failed alert, not yet too old", []jobs.Job{daily("nightly", jobs.KindFull)},
			[]jobs.Run{succeeded("nightly", day(-1)), failed("nightly", day(0))}, nil, nil},
		{"two nights without success: too old", []jobs.Job{daily("nightly", jobs.KindFull)},
			[]jobs.Run{succeeded("nightly", day(-2)), failed("nightly", day(-1)), failed("nightly", day(0))}, nil, []string{"nightly"}},
		{"a job that never succeeded counts from its creation", []jobs.Job{daily("nightly", jobs.KindIncr)}, nil, nil, []string{"nightly"}},
		{"a job created an hour ago is not overdue", []jobs.Job{func() jobs.Job {
			j := daily("new", jobs.KindFull)
			j.Created, j.Schedule.Start = t0.Add(-time.Hour), t0.Add(-time.Hour)
			return j
		}()}, nil, nil, nil},
		{"backup_max_age overrides the schedule: within it", []jobs.Job{daily("nightly", jobs.KindFull)},
			[]jobs.Run{succeeded("nightly", day(-2))}, map[jobs.Kind]time.Duration{jobs.KindFull: 72 * time.Hour}, nil},
		{"backup_max_age overrides the schedule: past it", []jobs.Job{daily("nightly", jobs.KindFull)},
			[]jobs.Run{succeeded("nightly", day(0))}, map[jobs.Kind]time.Duration{jobs.KindFull: 8 * time.Hour}, []string{"nightly"}},
		{"disabled, manual and non-backup jobs are not judged", []jobs.Job{disabled, manual, daily("prune", jobs.KindPrune), daily("drill", jobs.KindDrill)}, nil, nil, nil},
		{"each job on its own", []jobs.Job{daily("a", jobs.KindFull), daily("b", jobs.KindLogical)},
			[]jobs.Run{succeeded("a", day(0)), succeeded("b", day(-3))}, nil, []string{"b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runs := map[string][]jobs.Run{}
			for _, r := range tc.runs {
				runs[r.Job] = append(runs[r.Job], r)
			}
			got := Conditions(View{Cluster: clusterOf("n1", member("n1", ha.RolePrimary, 0)), Now: t0, TTL: ttl,
				Jobs: tc.jobs, Runs: runs, JobsNow: t0, MaxAge: tc.maxAge})
			var ids []string
			for _, a := range got {
				if a.Kind != KindBackupAge || a.Severity != Warning || !a.Condition {
					t.Errorf("unexpected %+v", a)
				}
				ids = append(ids, a.Subject)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("overdue %v, want %v; alerts %+v", ids, tc.want, got)
			}
		})
	}
	// Not read: not judged (the notifier keeps what it had).
	if got := Conditions(View{Cluster: clusterOf("n1"), Now: t0, TTL: ttl, Jobs: []jobs.Job{daily("nightly", jobs.KindFull)}}); len(got) != 0 {
		t.Fatalf("jobs judged without JobsNow: %+v", got)
	}
}
