package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// startWithStreamingStandby starts a three-node cluster and waits until it
// is healthy and the standby others(nodes, primary)[i] streams, its
// published position within a megabyte of the primary's (the clones'
// segment switches put it more than a switchover allows behind for a
// loop or so after it first streams); it returns the cluster, the primary
// and that standby.
func startWithStreamingStandby(t *testing.T, i int) (c *testcluster.Cluster, primary, standby string) {
	t.Helper()
	c = testcluster.StartCluster(t, testcluster.ClusterOptions{})
	c.WaitHealthy(60 * time.Second)
	primary = c.Leader()
	standby = others(c.Layout.Nodes, primary)[i]
	c.WaitFor(standby+" streaming and caught up", 60*time.Second, func(r status.Report) bool {
		m := member(r, standby)
		return m.Streaming && m.LagBytes < 1<<20
	})
	return c, primary, standby
}

// Every operation that changes the cluster answers --check with its
// conditions, pass or fail, and changes nothing either way: no request, no
// history entry, the same configuration, every member as it was (MON-2,
// issue 18 item 3).
func TestEveryOperationAnswersCheckAndChangesNothing(t *testing.T) {
	c, leader, standby := startWithStreamingStandby(t, 0)
	configBefore := ctl(t, c, "config", "-o", "json")
	began := time.Now()
	cases := []struct {
		args []string
		pass bool
		want string // a line of the answer
	}{
		{[]string{"stop", standby}, true, "[pass] not stopped already"},
		{[]string{"stop", "--all"}, true, "[pass] primary stop promotes nobody"},
		{[]string{"start", standby}, false, "[FAIL] stopped by the operator"},
		{[]string{"detach", standby}, true, "[pass] not the primary"},
		{[]string{"detach", leader}, false, "[FAIL] not the primary"},
		{[]string{"attach", standby}, false, "[FAIL] detached"},
		{[]string{"reinit", standby}, true, "[pass] a primary to follow"},
		{[]string{"reinit", leader}, false, "[FAIL] not the primary"},
		{[]string{"reinit", standby, "--from-backup"}, false, "[FAIL] node has a backup repository"},
		{[]string{"restart", "--rolling"}, true, "[pass] a switchover candidate"},
		{[]string{"config", "--mode", "strict", "--sync-count", "3"}, false, "[FAIL] enough synchronous standbys"},
		{[]string{"config", "--mode", "sync"}, true, "[pass] enough synchronous standbys"},
		{[]string{"restore-cluster", "--immediate"}, false, "[FAIL] node has a backup repository"},
		{[]string{"switchover", "--to", standby}, true, "[pass] candidate caught up"},
	}
	for _, tc := range cases {
		out, err := tryCtl(c, append(tc.args, "--check")...)
		if (err == nil) != tc.pass {
			t.Errorf("%s --check: exit error %v, want pass %v\n%s", strings.Join(tc.args, " "), err, tc.pass, out)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s --check does not answer %q:\n%s", strings.Join(tc.args, " "), tc.want, out)
		}
	}
	// Refused for real, too, with the failed condition named.
	out, err := tryCtl(c, "detach", leader)
	if err == nil || !strings.Contains(out, "detach of "+leader+" refused: not the primary") {
		t.Errorf("detach of the primary: err %v\n%s", err, out)
	}
	if after := ctl(t, c, "config", "-o", "json"); after != configBefore {
		t.Fatalf("--check changed the configuration:\nbefore %s\nafter %s", configBefore, after)
	}
	// The agents may record their own steps meanwhile; the operator's
	// commands record theirs as node "ctl".
	for _, e := range history(t, c) {
		if e.Node == "ctl" && e.Time.After(began) {
			t.Fatalf("--check or a refusal wrote a history entry: %+v", e)
		}
	}
	r, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if r.Leader != leader || !member(r, standby).Streaming {
		t.Fatalf("--check disturbed the cluster: leader %s (was %s), %s streaming %v", r.Leader, leader, standby, member(r, standby).Streaming)
	}
}
