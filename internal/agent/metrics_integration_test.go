package agent_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// scrape is one agent's /metrics page, parsed.
type scrape struct {
	raw      []byte
	families map[string]*dto.MetricFamily
}

func scrapeMetrics(c *testcluster.Cluster, node string) (scrape, error) {
	url := metricsURL(c, node)
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return scrape{}, err
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return scrape{}, fmt.Errorf("%s: %s, %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return scrape{}, fmt.Errorf("%s is not valid text exposition format: %w", url, err)
	}
	return scrape{raw: raw, families: families}, nil
}

func metricsURL(c *testcluster.Cluster, node string) string {
	i := slices.Index(c.Layout.Nodes, node)
	return fmt.Sprintf("http://127.0.0.1:%d/metrics", c.Layout.API[i])
}

// value is the sample of name whose labels include the given pairs.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	f, ok := s.families[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !testcluster.HasLabels(m, labels...) {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// waitMetrics scrapes node until check finds nothing missing (it returns
// what it misses, "" when nothing), and fails with the last miss.
func waitMetrics(t *testing.T, c *testcluster.Cluster, node string, timeout time.Duration, check func(scrape) string) scrape {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var miss string
	for {
		s, err := scrapeMetrics(c, node)
		if err != nil {
			miss = err.Error()
		} else if miss = check(s); miss == "" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s /metrics after %s: %s", node, timeout, miss)
		}
		time.Sleep(200 * time.Millisecond) // polling the endpoint
	}
}

// want checks name{labels} against cond, saying what it found otherwise.
func want(s scrape, cond func(float64) bool, what, name string, labels ...string) string {
	v, ok := s.value(name, labels...)
	switch {
	case !ok:
		return fmt.Sprintf("no %s%v", name, labels)
	case !cond(v):
		return fmt.Sprintf("%s%v = %v, want %s", name, labels, v, what)
	}
	return ""
}

func is(x float64) func(float64) bool      { return func(v float64) bool { return v == x } }
func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }

func firstMiss(misses ...string) string {
	for _, m := range misses {
		if m != "" {
			return m
		}
	}
	return ""
}

// Every agent of a real cluster answers /metrics in Prometheus' text
// format, from a registry of its own: the leader reports itself primary
// holding the lease, each standby's lag and sync state, the WAL it
// archived and the backup a job made; each standby reports itself a
// replica with its own lag; no page holds a password or the repository
// key.
func TestEveryAgentExportsMetrics(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Edit: syncMode("sync", 10*time.Second)}))
	r := c.WaitFor("a synchronous standby", 30*time.Second, hasSync)
	leader := r.Leader
	seg := switchWAL(t, c)
	c.WaitFor("segment "+seg+" archived", 30*time.Second, func(status.Report) bool { return slices.Contains(archivedWAL(t, c), seg) })
	out, err := exec.Command(c.Exe, "jobs", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml"), "create", "first", "--kind", "full", "--schedule", "immediate").CombinedOutput()
	if err != nil {
		t.Fatalf("jobs create: %v\n%s", err, out)
	}

	// Settled: every standby streams, and the primary's
	// pg_stat_replication agrees with the sync key (the first primary
	// picks its synchronous standby among the first to connect).
	r = c.WaitFor("every standby streaming, the sync key in force", 30*time.Second, func(r status.Report) bool {
		for _, m := range r.Members {
			want := map[bool]string{true: "sync", false: "async"}[m.Sync]
			if !m.Leader && (!m.Streaming || m.SyncState != want) {
				return false
			}
		}
		return true
	})
	var sync string
	for _, m := range r.Members {
		if m.Sync {
			sync = m.Name
		}
	}
	var timelines []float64
	for _, n := range c.Layout.Nodes {
		s := waitMetrics(t, c, n, 60*time.Second, func(s scrape) string {
			misses := []string{
				want(s, atLeast(1), "a timeline", "pgguard_timeline"),
				want(s, func(v float64) bool { return v > 0 }, "free space", "pgguard_disk_free_bytes", "volume", "data"),
				want(s, is(1), "the store read", "pgguard_store_reachable"),
				want(s, atLeast(0), "the archive's queue", "pgguard_archive_ready_files"),
			}
			if n == leader {
				misses = append(misses,
					want(s, is(1), "primary", "pgguard_role", "role", "primary"),
					want(s, is(1), "held", "pgguard_leader_lease_held"),
					want(s, func(v float64) bool { return v >= 0 && v < r.LeaseTTLSeconds }, "younger than the TTL", "pgguard_leader_lease_age_seconds"),
					want(s, atLeast(1), "the pushes of the archived WAL", "pgguard_wal_push_duration_seconds"),
					want(s, is(1), "the immediate job's run", "pgguard_job_runs_total", "kind", "full", "result", "succeeded"),
					want(s, is(1), "the job's backup", "pgguard_backups", "kind", "full"),
					want(s, atLeast(0), "its age", "pgguard_backup_last_age_seconds", "kind", "full"),
					want(s, is(0), "no failing job", "pgguard_jobs_failing", "kind", "full"),
					want(s, func(v float64) bool { return v > 0 }, "the repository's size", "pgguard_repository_size_bytes"),
				)
				for _, m := range c.Layout.Nodes {
					if m == leader {
						continue
					}
					state := "async"
					if m == sync {
						state = "sync"
					}
					misses = append(misses,
						want(s, atLeast(0), "a lag", "pgguard_standby_lag_bytes", "standby", m),
						want(s, atLeast(0), "a lag", "pgguard_standby_lag_seconds", "standby", m),
						want(s, is(1), "streaming", "pgguard_standby_streaming", "standby", m),
						want(s, is(1), "the sync state of "+state, "pgguard_standby_sync_state", "standby", m, "state", state),
					)
				}
			} else {
				misses = append(misses,
					want(s, is(1), "replica", "pgguard_role", "role", "replica"),
					want(s, is(0), "not held", "pgguard_leader_lease_held"),
					want(s, atLeast(0), "a lag", "pgguard_replication_lag_bytes"),
					want(s, is(1), "streaming", "pgguard_replication_streaming"),
					want(s, is(map[bool]float64{true: 1, false: 0}[n == sync]), "the sync set", "pgguard_sync_standby"),
				)
			}
			return firstMiss(misses...)
		})
		tl, _ := s.value("pgguard_timeline")
		timelines = append(timelines, tl)
		for _, name := range []string{"pgguard_role", "pgguard_timeline"} {
			for _, m := range s.families[name].GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["cluster"] != "test" || labels["node"] != n {
					t.Errorf("%s on %s without its cluster and node labels: %v", name, n, labels)
				}
			}
		}
		if _, ok := s.families["go_goroutines"]; !ok {
			t.Errorf("%s: no Go runtime metrics", n)
		}
		for name := range s.families {
			if strings.HasPrefix(name, "etcd_") || strings.HasPrefix(name, "grpc_") {
				t.Errorf("%s exports %s: the embedded etcd's metrics (the global registry) leaked into /metrics", n, name)
			}
		}
		checkNoSecret(t, c, n, s.raw)
	}
	if slices.Min(timelines) == 0 || slices.Min(timelines) != slices.Max(timelines) {
		t.Errorf("timelines %v, want one and the same on every node", timelines)
	}

	// The page is what Prometheus expects, role by role.
	for _, n := range c.Layout.Nodes {
		role := "replica"
		if n == leader {
			role = "primary"
		}
		var expected strings.Builder
		expected.WriteString("# HELP pgguard_role 1 for the role this node has now (what the health endpoints say: primary holding the lease, replica, demoted — running read-write without the lease —, stopped), 0 for the others.\n# TYPE pgguard_role gauge\n")
		for _, r := range []string{"demoted", "primary", "replica", "stopped"} {
			fmt.Fprintf(&expected, "pgguard_role{cluster=\"test\",node=%q,role=%q} %d\n", n, r, map[bool]int{true: 1}[r == role])
		}
		if err := testutil.ScrapeAndCompare(metricsURL(c, n), strings.NewReader(expected.String()), "pgguard_role"); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}

	// The leader's host is lost: the new primary counts a failover, timed
	// from the leader key gone to its promotion, on the next timeline,
	// and reports the lost member as not streaming.
	c.KillNode(leader)
	r = c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != leader })
	s := waitMetrics(t, c, r.Leader, 30*time.Second, func(s scrape) string {
		return firstMiss(
			want(s, is(1), "primary", "pgguard_role", "role", "primary"),
			want(s, is(1), "one failover", "pgguard_failovers_total"),
			want(s, func(v float64) bool { return v > 0 && v < 30 }, "a few seconds", "pgguard_last_failover_duration_seconds"),
			want(s, is(timelines[0]+1), "the next timeline", "pgguard_timeline"),
			want(s, is(0), "the lost primary not streaming", "pgguard_standby_streaming", "standby", leader),
		)
	})
	took, _ := s.value("pgguard_last_failover_duration_seconds")
	t.Logf("failover to %s: %.2fs from the leader key gone to the promotion", r.Leader, took)
}

// checkNoSecret fails when the page holds a password of node's
// configuration or the repository's key.
func checkNoSecret(t *testing.T, c *testcluster.Cluster, node string, page []byte) {
	t.Helper()
	cfg, err := config.Load(c.Layout.ConfigPath(node))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(c.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range map[string]string{
		"the superuser's password":  cfg.Postgres.Superuser.Password,
		"the replication password":  cfg.Postgres.Replication.Password,
		"the repository key":        strings.TrimSpace(string(key)),
		"the repository's key file": cfg.Repository.KeyFile,
		"the repository's location": strings.TrimPrefix(cfg.Repository.URL, "file://"),
	} {
		if len(secret) >= 4 && bytes.Contains(page, []byte(secret)) {
			t.Errorf("%s's /metrics holds %s", node, what)
		}
	}
}
