package agent_test

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{Edit: syncMode("sync", 10*time.Second)})
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
	c = testcluster.StartShipped(t, testcluster.ClusterOptions{Nodes: 2, ExternalEtcd: true, Edit: syncMode(mode, timeout)})
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

// Chaos finding 24 made to happen: the primary acknowledges writes its
// synchronous standby S1 holds and the other standby S2 does not (S2's
// walreceiver is stopped); the primary's host dies, S1 takes the key, and
// S1's host dies too before S2 has caught up. S2 must not be promoted
// while S1 is away: the interim sync key S1 wrote names S1 itself. Once
// S1 is back a primary leads again, and no acknowledged write is lost.
func TestANewPrimaryLostBeforeItsStandbyCaughtUpIsWaitedFor(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{Edit: syncMode("sync", 30*time.Second)})
	r := c.WaitFor("a synchronous standby", 30*time.Second, hasSync)
	primary := r.Leader
	var s1, s2 string
	for _, m := range r.Members {
		switch {
		case m.Name == primary:
		case m.Sync:
			s1 = m.Name
		default:
			s2 = m.Name
		}
	}
	walreceiver, err := strconv.Atoi(sqlOn(t, c.NodeDSN(s2), nil, "SELECT pid::text FROM pg_stat_wal_receiver"))
	if err != nil {
		t.Fatalf("%s's walreceiver: %v", s2, err)
	}
	writes := c.StartWrites("writes flowing", c.Layout.DSN(), 10*time.Millisecond, 20)
	if err := syscall.Kill(walreceiver, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(walreceiver, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	stoppedAt := time.Now()
	c.WaitFor("writes acknowledged that "+s2+" has not received", 10*time.Second, func(status.Report) bool {
		return writes.AckedAfter(stoppedAt.Add(time.Second))
	})
	c.KillNode(primary)
	// Once it has written its interim sync key (naming s2), as the chaos
	// trial's new primary had when it was lost.
	c.WaitFor(s1+" holding the leader key and naming "+s2+" synchronous", 30*time.Second, func(r status.Report) bool {
		return r.Leader == s1 && slices.Contains(r.SyncStandbys, s2)
	})
	c.KillNode(s1)
	resume()
	// The first node back, as in the chaos suite's double kill: its etcd
	// member gives the store a majority again (it is not in the key).
	c.StartNode(primary)
	back := time.Now()
	c.WaitFor("the store answering again", 30*time.Second, func(status.Report) bool { return true })
	// Longer than a lease and a promotion: S2 would lead by then.
	for time.Since(back) < 10*time.Second {
		if r, err := c.Status(); err == nil && r.Leader == s2 {
			t.Fatalf("%s was promoted while %s, the only standby known to hold every acknowledged write, was away", s2, s1)
		}
		time.Sleep(200 * time.Millisecond) // observing that nothing happens for a while
	}
	c.StartNode(s1)
	r = c.WaitFor("a primary again with writes flowing", 90*time.Second, func(r status.Report) bool {
		return r.Leader != "" && writes.AckedAfter(time.Now().Add(-time.Second))
	})
	acks := writes.Stop()
	c.CheckNoWriteLost("a new primary lost before its standby caught up", acks)
	t.Logf("%s lost, then %s as it led: %s waited; %s leads again, 0 of %d acknowledged writes lost", primary, s1, s2, r.Leader, len(acks))
}
