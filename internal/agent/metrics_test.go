package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/walstats"
)

// jobsStore adds the store's jobs and runs, which the figures' reader reads.
type jobsStore struct {
	*fakeStore
	jobs []jobs.Job
	runs map[string][]jobs.Run
}

func (s jobsStore) Jobs(context.Context) ([]jobs.Job, error)            { return s.jobs, nil }
func (s jobsStore) Runs(context.Context) (map[string][]jobs.Run, error) { return s.runs, nil }

// The agent's side of /metrics, with a fake store and instance: the last
// loop and the lease as the agent holds them, a promotion timed from the
// moment the leader key was seen gone, the archive's queue and the pushes'
// record, the runs this node ended and, read in the background once
// someone scraped, the jobs of the store.
func TestMetricsPageOfALeadingAgent(t *testing.T) {
	weekly, err := schedule.Parse("weekly:sun@03:00", time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ended := time.Now().Add(-time.Hour)
	store := jobsStore{fakeStore: &fakeStore{},
		jobs: []jobs.Job{{ID: "drill", Kind: jobs.KindDrill, Schedule: weekly, Enabled: true}},
		runs: map[string][]jobs.Run{"drill": {{Job: "drill", Status: jobs.Failed, Started: ended.Add(-time.Minute), Ended: ended}}}}
	a := testAgent(&fakeInstance{running: true}, store.fakeStore)
	a.store = store
	a.cfg.Cluster = "main"
	a.cfg.HA.TTL, a.cfg.HA.SafetyMargin = config.Duration(10*time.Second), config.Duration(2*time.Second)
	a.cfg.Archive.Enabled = true
	a.cfg.Postgres.DataDir = filepath.Join(t.TempDir(), "data")
	status := filepath.Join(a.cfg.Postgres.DataDir, "pg_wal", "archive_status")
	if err := os.MkdirAll(status, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, age := range map[string]time.Duration{"000000010000000000000003.ready": 2 * time.Minute, "000000010000000000000004.ready": time.Minute, "000000010000000000000002.done": time.Hour} {
		p := filepath.Join(status, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, time.Now().Add(-age), time.Now().Add(-age))
	}
	if err := walstats.Record(walstats.Path(a.cfg.Postgres.DataDir), 300*time.Millisecond, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	a.metrics = newAgentMetrics(a)
	a.onEvent = append(a.onEvent, a.metrics.event)
	defer a.metrics.close()

	now := time.Now()
	a.mem = ha.Memory{HoldsLeader: true, LastRenew: now.Add(-time.Second), LeaderLostAt: now.Add(-3 * time.Second)}
	a.record(context.Background(), ha.Promote, "", ha.PromoteElection, "ok in 50ms")
	a.metrics.runEnded(jobs.KindFull, jobs.Succeeded)
	obs := leading(a.mem)
	obs.Local = ha.Local{Running: true, Healthy: true, Timeline: 2}
	a.api.last.Store(&loopView{obs: obs, at: now})

	srv := httptest.NewServer(a.metrics.handler())
	defer srv.Close()
	var page map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		page = scrapeText(t, srv.URL)
		if _, ok := page[`pgguard_jobs_failing{cluster="main",kind="drill",node="n1"}`]; ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the reader started at the first scrape
	}
	for sample, want := range map[string]float64{
		`pgguard_role{cluster="main",node="n1",role="primary"}`:                           1,
		`pgguard_leader_lease_held{cluster="main",node="n1"}`:                             1,
		`pgguard_timeline{cluster="main",node="n1"}`:                                      2,
		`pgguard_failovers_total{cluster="main",node="n1"}`:                               1,
		`pgguard_switchovers_total{cluster="main",node="n1"}`:                             0,
		`pgguard_archive_ready_files{cluster="main",node="n1"}`:                           2,
		`pgguard_wal_push_duration_seconds_count{cluster="main",node="n1"}`:               1,
		`pgguard_job_runs_total{cluster="main",kind="full",node="n1",result="succeeded"}`: 1,
		`pgguard_jobs_failing{cluster="main",kind="drill",node="n1"}`:                     1,
		`pgguard_job_schedule_interval_seconds{cluster="main",kind="drill",node="n1"}`:    7 * 24 * 3600,
	} {
		if got, ok := page[sample]; !ok || got != want {
			t.Errorf("%s = %v (found: %v), want %v", sample, got, ok, want)
		}
	}
	for sample, within := range map[string][2]float64{
		`pgguard_last_failover_duration_seconds{cluster="main",node="n1"}`:   {2.9, 4},
		`pgguard_leader_lease_age_seconds{cluster="main",node="n1"}`:         {0.9, 3},
		`pgguard_archive_oldest_ready_age_seconds{cluster="main",node="n1"}`: {119, 130},
	} {
		if got, ok := page[sample]; !ok || got < within[0] || got > within[1] {
			t.Errorf("%s = %v (found: %v), want within %v", sample, got, ok, within)
		}
	}
}

// scrapeText gets a /metrics page and indexes its samples by their text
// form (name{labels}, labels sorted).
func scrapeText(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the page does not parse: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+`"`+l.GetValue()+`"`)
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[name+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
