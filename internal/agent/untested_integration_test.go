package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Paths that existed without a test (issue 18 item 7).

// A forced takeover: with automatic failover paused and the primary's host
// lost, a detached standby is refused by the checks, promoted with --force,
// and the command and the history state the loss it may cost.
func TestForcedTakeoverStatesTheLossAndRecordsIt(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	leader := c.Leader()
	to := others(c.Layout.Nodes, leader)[1]
	c.WaitFor(to+" streaming", 60*time.Second, func(r status.Report) bool { return member(r, to).Streaming })
	ctl(t, c, "detach", to)
	ctl(t, c, "pause")
	c.KillNode(leader)
	c.WaitFor("the leader key gone", 30*time.Second, func(r status.Report) bool { return r.Leader == "" })
	out, err := tryCtl(c, "takeover", "--to", to, "--check")
	if err == nil || !strings.Contains(out, "[FAIL] candidate may be promoted") {
		t.Fatalf("takeover --check of a detached standby: %v\n%s", err, out)
	}
	if out, err := tryCtl(c, "takeover", "--to", to, "--yes"); err == nil {
		t.Fatalf("takeover of a detached standby without --force succeeded:\n%s", out)
	}
	out, err = tryCtl(c, "takeover", "--to", to, "--force", "--yes")
	if err != nil || !strings.Contains(out, "FORCED takeover by "+to) || !strings.Contains(out, "may be lost") {
		t.Fatalf("forced takeover: %v\n%s", err, out)
	}
	c.WaitFor(to+" primary", 60*time.Second, func(r status.Report) bool { return r.Leader == to && member(r, to).Role == "primary" })
	found := false
	for _, e := range history(t, c) {
		if e.Action == ha.EventTakeoverRequest && e.Target == to && strings.Contains(e.Reason, "forced takeover: up to") {
			found = true
		}
	}
	if !found {
		t.Fatal("the history does not record the forced takeover with its possible loss")
	}
}

// Two database nodes on an external store lose the primary's host: the
// standby is promoted, writes resume on it, and the old primary comes back
// as its standby.
func TestTwoNodesOnAnExternalStoreLoseThePrimaryHost(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{Nodes: 2, ExternalEtcd: true})
	leader := c.Leader()
	standby := others(c.Layout.Nodes, leader)[0]
	c.WaitFor(standby+" streaming", 60*time.Second, func(r status.Report) bool { return member(r, standby).Streaming })
	writes := c.StartWrites("writes flowing", c.Layout.DSN(), 20*time.Millisecond, 20)
	killed := time.Now()
	c.KillNode(leader)
	c.WaitFor(standby+" promoted and taking writes", 60*time.Second, func(r status.Report) bool {
		return r.Leader == standby && writes.AckedAfter(killed)
	})
	c.StartNode(leader)
	c.WaitFor(leader+" back as the standby of "+standby, 120*time.Second, func(r status.Report) bool {
		m := member(r, leader)
		return m.Streaming && m.Following == standby
	})
	acks := writes.Stop()
	t.Logf("2 nodes, external store: primary host lost; longest write gap %s", testcluster.MaxGap(acks, killed).Round(time.Millisecond))
}

// With reinit_on_rewind_failure off, a former primary whose pg_rewind
// fails is shown as split with what to do, and is left alone until the
// operator rebuilds it with ctl reinit.
func TestRewindFailureWithoutReinitWaitsForTheOperator(t *testing.T) {
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o755)
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	failing := filepath.Join(dir, "pg_rewind")
	script := "#!/bin/sh\necho 'pg_rewind: error: could not find common ancestor of the source and target cluster'\nexit 1\n"
	if err := os.WriteFile(failing, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		cfg.HA.ReinitOnRewindFailure = false
		cfg.Postgres.Programs = map[string]string{"pg_rewind": failing}
	}})
	leader := c.Leader()
	for _, n := range others(c.Layout.Nodes, leader) {
		c.WaitFor(n+" streaming", 60*time.Second, func(r status.Report) bool { return member(r, n).Streaming })
	}
	// A crashed primary always rewinds when it returns.
	c.KillNode(leader)
	r := c.WaitFor("a new primary", 60*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != leader })
	c.StartNode(leader)
	c.WaitFor(leader+" split with what to do", 90*time.Second, func(r status.Report) bool {
		m := member(r, leader)
		return m.State == "split" && strings.Contains(m.Problem, "pg_rewind cannot repair the divergence: run 'pgguard ctl reinit "+leader+"'")
	})
	if hasEvent(history(t, c), leader, ha.Reinit, time.Time{}) {
		t.Fatal("the node was rebuilt although reinit_on_rewind_failure is off")
	}
	ctl(t, c, "reinit", leader, "--yes")
	c.WaitFor(leader+" rebuilt and streaming", 120*time.Second, func(s status.Report) bool {
		m := member(s, leader)
		return m.Streaming && m.Following == r.Leader
	})
}
