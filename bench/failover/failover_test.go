// Package failover measures pgguard's write outage on a real three-node
// cluster: a probe client writes a row every 10 ms through the multi-host
// connection string and records every acknowledged write; each trial kills
// the primary (its host, as `pgguard demo kill` does, or only its
// postmaster, as `pgguard demo crash` does) and measures the longest gap
// between acknowledged writes and how many acknowledged writes are missing
// once the cluster has settled.
//
// Run: go test ./bench/failover -run '^$' -bench . -benchtime 1x -trials 5
package failover

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

var (
	trials     = flag.Int("trials", 5, "trials per fault")
	syncTrials = flag.Int("sync-trials", 20, "trials of host loss in sync mode")
	report     = flag.String("report", "", "append a Markdown table of the results to this file")
)

type trial struct {
	gap     time.Duration
	missing int
	acked   int
}

func BenchmarkHostLoss(b *testing.B) {
	run(b, "host loss (kill -9 agent + PostgreSQL)", *trials, nil, func(c *testcluster.Cluster, leader string) error {
		return c.Layout.KillNode(leader)
	}, true)
}

func BenchmarkPostmasterCrash(b *testing.B) {
	run(b, "postmaster crash (kill -9 postmaster only)", *trials, nil, func(c *testcluster.Cluster, leader string) error {
		return c.Layout.KillPostmaster(leader)
	}, false)
}

func BenchmarkSwitchover(b *testing.B) {
	run(b, "switchover (pgguard ctl switchover --yes)", *trials, nil, func(c *testcluster.Cluster, leader string) error {
		out, err := exec.Command(c.Exe, "ctl", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml"), "switchover", "--yes").CombinedOutput()
		if err != nil {
			return fmt.Errorf("switchover: %v: %s", err, out)
		}
		return nil
	}, false)
}

func BenchmarkSyncHostLoss(b *testing.B) {
	run(b, "host loss in sync mode", *syncTrials, func(cfg *config.Config) { cfg.HA.ReplicationMode = "sync" },
		func(c *testcluster.Cluster, leader string) error { return c.Layout.KillNode(leader) }, true)
}

func run(b *testing.B, fault string, n int, edit func(*config.Config), inject func(*testcluster.Cluster, string) error, restart bool) {
	c := testcluster.StartCluster(b, testcluster.ClusterOptions{Edit: edit})
	ctx := context.Background()
	var results []trial
	for i := 0; i < n; i++ {
		r := c.WaitHealthy(120 * time.Second)
		if edit != nil {
			r = c.WaitFor("a synchronous standby", 30*time.Second, func(r status.Report) bool {
				return len(r.SyncStandbys) > 0 && r.Healthy(len(c.Layout.Nodes))
			})
		}
		leader := r.Leader
		probe, err := testcluster.StartWriteProbe(ctx, c.Layout.DSN(), 10*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		c.WaitFor("writes flowing", 10*time.Second, func(status.Report) bool { return len(probe.Acks()) >= 100 })
		at := time.Now()
		if err := inject(c, leader); err != nil {
			b.Fatal(err)
		}
		c.WaitFor("writes to resume", 60*time.Second, func(status.Report) bool {
			a := probe.Acks()
			return len(a) > 0 && a[len(a)-1].Time.After(at) && time.Since(a[len(a)-1].Time) < time.Second && time.Since(at) > time.Second
		})
		// Keep writing a little after the outage, then check every ack.
		c.WaitFor("writes after the outage", 10*time.Second, func(status.Report) bool {
			a := probe.Acks()
			return a[len(a)-1].Time.Sub(at) > 3*time.Second
		})
		acks := probe.Stop()
		missing, err := testcluster.MissingAcks(ctx, c.Layout.DSN(), acks)
		if err != nil {
			b.Fatal(err)
		}
		t := trial{gap: testcluster.MaxGap(acks, at), missing: len(missing), acked: len(acks)}
		results = append(results, t)
		b.Logf("trial %d: %s of %s: write gap %s, %d of %d acknowledged writes missing", i+1, fault, leader, t.gap.Round(time.Millisecond), t.missing, t.acked)
		if restart {
			c.StartNode(leader)
		}
	}
	c.WaitHealthy(120 * time.Second)
	gaps := make([]time.Duration, len(results))
	lost := 0
	for i, r := range results {
		gaps[i] = r.gap
		lost += r.missing
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	median := gaps[len(gaps)/2]
	if len(gaps)%2 == 0 {
		median = (gaps[len(gaps)/2-1] + gaps[len(gaps)/2]) / 2
	}
	b.ReportMetric(median.Seconds(), "median-gap-s")
	b.ReportMetric(gaps[len(gaps)-1].Seconds(), "max-gap-s")
	b.ReportMetric(float64(lost), "lost-acked-writes")
	line := fmt.Sprintf("| %s | %d | %.2f s | %.2f s | %d |\n", fault, len(results), median.Seconds(), gaps[len(gaps)-1].Seconds(), lost)
	// Printed, not logged: the testing package truncates long benchmark logs.
	fmt.Print("RESULT " + line)
	if *report != "" {
		f, err := os.OpenFile(*report, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprint(f, line)
			f.Close()
		}
	}
}
