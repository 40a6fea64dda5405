package agent_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func syncMode(mode string, timeout time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		c.HA.ReplicationMode = mode
		c.HA.SyncTimeout = config.Duration(timeout)
	}
}

func hasSync(r status.Report) bool {
	for _, m := range r.Members {
		if m.Sync && m.Streaming {
			return true
		}
	}
	return false
}

// ctl runs 'pgguard ctl args' against c and returns its output; it fails
// the test when the command fails.
func ctl(t *testing.T, c *testcluster.Cluster, args ...string) string {
	t.Helper()
	out, err := tryCtl(c, args...)
	if err != nil {
		t.Fatalf("pgguard ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// tryCtl runs 'pgguard ctl args' against c and returns its output and
// error, for a command that may be refused.
func tryCtl(c *testcluster.Cluster, args ...string) (string, error) {
	out, err := exec.Command(c.Exe, append([]string{"ctl", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml")}, args...)...).CombinedOutput()
	return string(out), err
}

func TestSyncModeHostLossLosesNoAcknowledgedWrite(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: syncMode("sync", 10*time.Second)})
	r := c.WaitFor("a synchronous standby", 30*time.Second, hasSync)
	old := r.Leader
	oldTL := member(r, old).Timeline
	writes := c.StartWrites("writes flowing", c.Layout.DSN(), 10*time.Millisecond, 50)
	r, killed := c.KillPrimaryUnderWrites(writes, old, "writes on a new primary")
	if tl := member(r, r.Leader).Timeline; tl <= oldTL {
		t.Fatalf("new primary %s is on timeline %d, not past the old %d: it was not promoted", r.Leader, tl, oldTL)
	}
	// The old primary comes back as a streaming standby.
	c.StartNode(old)
	c.WaitFor(old+" streaming again", 60*time.Second, streamingFrom(r.Leader, others(c.Layout.Nodes, r.Leader)...))
	acks := writes.Stop()
	c.CheckNoWriteLost("sync mode", acks)
	t.Logf("sync mode host loss of %s: 0 of %d acknowledged writes lost, write gap %s", old, len(acks), testcluster.MaxGap(acks, killed))
}

// killSyncStandbyUnderWrites starts two database nodes on an external
// store, so that losing the only standby leaves the primary alone, in
// replication mode mode with sync_timeout timeout; once the standby is
// synchronous and writes flow, it kills the standby. It returns the
// cluster, the primary, the killed standby, the writes still running and
// when the standby was killed.
func killSyncStandbyUnderWrites(t *testing.T, mode string, timeout time.Duration) (c *testcluster.Cluster, primary, standby string, writes *testcluster.WriteProbe, killed time.Time) {
	t.Helper()
	c = testcluster.StartCluster(t, testcluster.ClusterOptions{Nodes: 2, ExternalEtcd: true, Edit: syncMode(mode, timeout)})
	primary = c.WaitFor("a synchronous standby", 30*time.Second, hasSync).Leader
	standby = others(c.Layout.Nodes, primary)[0]
	writes = c.StartWrites("writes flowing", c.Layout.DSN(), 10*time.Millisecond, 20)
	killed = time.Now()
	c.KillNode(standby)
	return c, primary, standby, writes, killed
}

// Losing the only synchronous standby stalls commits for about the sync
// timeout; then the primary degrades, records it, and takes writes again.
func TestSyncStandbyLossDegradesAfterTimeoutAndRecovers(t *testing.T) {
	const timeout = 3 * time.Second
	c, primary, standby, writes, killed := killSyncStandbyUnderWrites(t, "sync", timeout)
	c.WaitFor("writes to resume in degraded mode", 30*time.Second, func(status.Report) bool { return writes.AckedAfter(killed.Add(timeout)) })
	gap := testcluster.MaxGap(writes.Acks(), killed)
	if gap < timeout-500*time.Millisecond {
		t.Fatalf("writes stalled only %s: commits should wait about sync_timeout (%s) for the lost standby", gap, timeout)
	}
	events := history(t, c)
	if !hasEvent(events, primary, ha.SetSyncNames, killed) {
		t.Fatalf("no degrade recorded in the history: %+v", events)
	}
	c.StartNode(standby)
	c.WaitFor(standby+" synchronous again", 60*time.Second, func(r status.Report) bool {
		for _, m := range r.Members {
			if m.Name == standby && m.Sync && m.Streaming {
				return true
			}
		}
		return false
	})
	writes.Stop()
	t.Logf("sync standby lost: writes stalled %s (sync_timeout %s), then resumed; %s synchronous again after restart", gap.Round(time.Millisecond), timeout, standby)
}

func TestStrictModeWritesWaitForTheLostStandby(t *testing.T) {
	c, _, standby, writes, killed := killSyncStandbyUnderWrites(t, "strict", time.Second)
	// For five times the sync timeout no write may be acknowledged.
	deadline := killed.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a := writes.Acks()
		if last := a[len(a)-1].Time; last.After(killed.Add(500 * time.Millisecond)) {
			t.Fatalf("strict mode acknowledged a write %s after its only standby died", last.Sub(killed))
		}
		time.Sleep(100 * time.Millisecond) // observing that nothing happens for a while
	}
	c.StartNode(standby)
	c.WaitFor("writes to resume once the standby is back", 60*time.Second, func(status.Report) bool { return writes.AckedAfter(deadline) })
	writes.Stop()
}

func TestPausedClusterPromotesNobodyUntilResumed(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	old := c.Leader()
	ctl(t, c, "pause")
	c.WaitFor("paused shown in status", 10*time.Second, func(r status.Report) bool { return r.Paused })
	c.KillNode(old)
	killed := time.Now()
	for time.Since(killed) < 8*time.Second {
		r, err := c.Status()
		if err == nil && r.Leader != "" && r.Leader != old {
			t.Fatalf("%s was promoted while failover was paused", r.Leader)
		}
		time.Sleep(200 * time.Millisecond) // observing that nothing happens for a while
	}
	ctl(t, c, "resume")
	r := c.WaitFor("a new leader after resume", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	t.Logf("paused for 8s with no promotion; after resume %s took over", r.Leader)
}
