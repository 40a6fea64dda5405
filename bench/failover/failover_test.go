// Package failover measures pgguard's write outage on a real three-node
// cluster as `pgguard demo up` ships it (WAL archived into a backup
// repository, the demo's default jobs installed): a probe client writes a row every 10 ms through the multi-host
// connection string and records every acknowledged write; each trial kills
// the primary (its host, as `pgguard demo kill` does, or only its
// postmaster, as `pgguard demo crash` does) and measures the longest gap
// between acknowledged writes and how many acknowledged writes are missing
// once the cluster has settled.
//
// BenchmarkPatroniSideBySide (sidebyside_test.go, only with -patroni) runs
// the same trials against pgguard and against Patroni (patroni_test.go) in
// one run, for docs/FAILOVER.md's side-by-side table.
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
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

var (
	trials     = flag.Int("trials", 5, "trials per fault")
	syncTrials = flag.Int("sync-trials", 20, "trials of host loss in sync mode")
	report     = flag.String("report", "", "append a Markdown table of the results to this file (BenchmarkPatroniSideBySide: rewrite its table between the side-by-side markers, else append it)")
)

func BenchmarkHostLoss(b *testing.B) {
	run(b, "host loss (kill -9 agent + PostgreSQL)", *trials, nil, hostLoss)
}

func BenchmarkPostmasterCrash(b *testing.B) {
	run(b, "postmaster crash (kill -9 postmaster only)", *trials, nil, postmasterCrash)
}

func BenchmarkSwitchover(b *testing.B) {
	run(b, "switchover (pgguard ctl switchover --yes)", *trials, nil, switchover)
}

// BenchmarkSwitchoverArchivingOff is the labelled variant that explains
// the switchover's figure: the same switchover on a cluster that archives
// no WAL and runs no jobs (not as shipped), as docs/FAILOVER.md measured
// before the demo archived WAL.
func BenchmarkSwitchoverArchivingOff(b *testing.B) {
	measureCluster(b, "switchover, WAL archiving off (not as shipped)", *trials, testcluster.StartCluster(b, testcluster.ClusterOptions{}), false, switchover)
}

// BenchmarkStandbyLoss kills the standby whose etcd member leads raft
// (issue 11: the primary must not notice).
func BenchmarkStandbyLoss(b *testing.B) {
	run(b, "standby loss (kill -9 agent + PostgreSQL of the standby leading etcd)", *trials, nil, standbyLoss)
}

// BenchmarkHostLossTLS and BenchmarkHostLossPlaintext measure what TLS
// costs a failover: the store, the API and PostgreSQL's connections all
// with TLS (the default, with the API over HTTPS too), against none.
func BenchmarkHostLossTLS(b *testing.B) {
	runWith(b, "host loss, TLS everywhere (store, API, PostgreSQL)", *trials, testcluster.ClusterOptions{APITLS: true}, hostLoss)
}

func BenchmarkHostLossPlaintext(b *testing.B) {
	runWith(b, "host loss, no TLS anywhere", *trials, testcluster.ClusterOptions{Plaintext: true}, hostLoss)
}

func BenchmarkSyncHostLoss(b *testing.B) {
	run(b, "host loss in sync mode", *syncTrials, func(cfg *config.Config) { cfg.HA.ReplicationMode = "sync" }, hostLoss)
}

// pgguardTarget is a pgguard cluster of three agents, each with its
// embedded etcd member.
type pgguardTarget struct {
	c    *testcluster.Cluster
	sync bool // settle also waits for a synchronous standby
}

func (p pgguardTarget) Settle(b *testing.B) string {
	p.c.WaitHealthy(120 * time.Second)
	if p.sync {
		p.c.WaitFor("a synchronous standby", 30*time.Second, func(r status.Report) bool {
			return len(r.SyncStandbys) > 0 && r.Healthy(len(p.c.Layout.Nodes))
		})
	}
	// Steady state, as a cluster runs between failures: the primary's
	// agent moves raft leadership of the store to a standby's member once
	// the group has been stable for ha.StoreSettle, so that losing the
	// primary's host costs no store election (and no lease extension
	// that comes with one). A trial right after a start or a failover
	// would otherwise measure that transient.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := p.c.Layout.StatusWithStore(ctx)
		cancel()
		if err == nil && s.Healthy(len(p.c.Layout.Nodes)) && s.StoreLeader() != "" && s.StoreLeader() != s.Leader {
			return s.Leader
		}
		if time.Now().After(deadline) {
			b.Fatalf("raft leadership of the store still on the primary's host after 60s: primary %q, store leader %q (err %v)", s.Leader, s.StoreLeader(), err)
		}
		time.Sleep(200 * time.Millisecond) // polling the status, with the deadline above
	}
}

func (p pgguardTarget) DSN() string { return p.c.Layout.DSN() }

func (p pgguardTarget) Inject(f fault, node string) (string, error) {
	ctl := func(args ...string) error {
		out, err := exec.Command(p.c.Exe, append([]string{"ctl", "-c", filepath.Join(p.c.Layout.Dir, "ctl.yaml")}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	switch f {
	case hostLoss:
		return node, p.c.Layout.KillNode(node)
	case postmasterCrash:
		return node, p.c.Layout.KillPostmaster(node)
	case standbyLoss:
		// The worst standby to lose: the one whose etcd member leads
		// raft, so the store elects while the primary renews.
		victim := ""
		for _, n := range p.c.Layout.Nodes {
			if n != node {
				victim = n
				break
			}
		}
		if err := ctl("store-leader", victim); err != nil {
			return victim, err
		}
		return victim, p.c.Layout.KillNode(victim)
	}
	return node, ctl("switchover", "--yes")
}

func (p pgguardTarget) Restore(b *testing.B, node string) { p.c.StartNode(node) }

func run(b *testing.B, label string, n int, edit func(*config.Config), f fault) {
	runWith(b, label, n, testcluster.ClusterOptions{Edit: edit}, f)
}

// runWith measures the cluster as shipped (testcluster.StartShipped:
// WAL archived into a repository, the demo's default jobs); an Edit
// means sync mode.
func runWith(b *testing.B, label string, n int, o testcluster.ClusterOptions, f fault) {
	measureCluster(b, label, n, testcluster.StartShipped(b, o), o.Edit != nil, f)
}

func measureCluster(b *testing.B, label string, n int, c *testcluster.Cluster, sync bool, f fault) {
	results := measure(b, pgguardTarget{c: c, sync: sync}, f, n, label)
	c.WaitHealthy(120 * time.Second)
	s := summarize(results)
	b.ReportMetric(s.median.Seconds(), "median-gap-s")
	b.ReportMetric(s.max.Seconds(), "max-gap-s")
	b.ReportMetric(float64(s.lost), "lost-acked-writes")
	line := fmt.Sprintf("| %s | %d | %.2f s | %.2f s | %d |\n", loadLabel(label), s.trials, s.median.Seconds(), s.max.Seconds(), s.lost)
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
