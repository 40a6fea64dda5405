package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// moveStoreLeader retries a raft leadership move until it lands (a move
// right after an election may find the target not yet caught up).
func moveStoreLeader(t *testing.T, c *testcluster.Cluster, to string) {
	t.Helper()
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		last = store.MoveStoreLeader(ctx, to)
		cancel()
		if last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond) // retry interval of a polling loop with a deadline
	}
	t.Fatalf("move raft leadership to %s: %v", to, last)
}

// waitStoreLeader polls the etcd members until cond holds for the member
// that leads raft, failing with what was last seen.
func waitStoreLeader(t *testing.T, c *testcluster.Cluster, what string, timeout time.Duration, cond func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last, lastErr := "", error(nil)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := c.Layout.StatusWithStore(ctx)
		cancel()
		if lastErr = err; err == nil {
			if last = r.StoreLeader(); cond(last) {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	t.Fatalf("timed out after %s waiting for %s; raft leader last seen: %q (err %v)", timeout, what, last, lastErr)
	return last
}

// Issue 11: losing the standby whose etcd member leads raft must not fence
// the primary. The election that follows can make the primary's own member
// raft leader while the dead member is still published as a healthy
// standby; the primary must then not hand raft leadership to the dead
// member (a pending transfer stalls every proposal, the lease renewal
// among them), and only hands it to the live standby once the store has
// been stable for a while.
func TestStandbyLossNeverMovesStoreLeadershipToTheDeadMember(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	primary := c.Leader()
	standbys := others(c.Layout.Nodes, primary)
	sort.Strings(standbys)
	// The first standby by name is the one the old code picked.
	victim, survivor := standbys[0], standbys[1]
	moveStoreLeader(t, c, victim)
	waitStoreLeader(t, c, victim+" leads raft", 10*time.Second, func(l string) bool { return l == victim })
	pmPID := c.Layout.PostmasterPID(primary)
	logPath := filepath.Join(c.Layout.NodeDir(primary), "agent.log")
	before, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	c.KillNode(victim)
	if l := waitStoreLeader(t, c, "a new raft leader", 15*time.Second, func(l string) bool { return l != "" && l != victim }); l != primary {
		moveStoreLeader(t, c, primary)
	}
	t.Logf("%s killed; %s's etcd member leads raft %s later", victim, primary, time.Since(killed).Round(time.Millisecond))

	// The primary's agent hands leadership to the survivor once settled,
	// never to the victim.
	waitStoreLeader(t, c, "raft leadership handed to "+survivor, 30*time.Second, func(l string) bool { return l == survivor })
	after, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	added := string(after[len(before):])
	for _, line := range strings.Split(added, "\n") {
		if strings.Contains(line, "leadership") && strings.Contains(line, "to="+victim) {
			t.Errorf("the primary's agent tried to move raft leadership to the dead member %s: %s", victim, line)
		}
	}
	if !strings.Contains(added, "moved etcd leadership off the primary") {
		t.Errorf("no move to %s in %s's log after the kill:\n%s", survivor, primary, added)
	}
	for _, e := range history(t, c) {
		if e.Time.After(killed) && e.Node == primary && (e.Action == ha.Fence || e.Action == ha.StartPrimary) {
			t.Errorf("the primary was disturbed by a standby's loss: %s %s %s [%s]", e.Time.Format(time.TimeOnly), e.Action, e.Reason, e.Result)
		}
	}
	if got := c.Layout.PostmasterPID(primary); got != pmPID {
		t.Errorf("the primary's postmaster changed from pid %d to %d: it was restarted", pmPID, got)
	}
	if r, err := c.Status(); err != nil || r.Leader != primary {
		t.Errorf("leader after the standby's loss: %q (err %v), want %s", r.Leader, err, primary)
	}
}
