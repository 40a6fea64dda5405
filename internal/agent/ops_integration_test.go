package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func member(r status.Report, name string) status.Member {
	for _, m := range r.Members {
		if m.Name == name {
			return m
		}
	}
	return status.Member{}
}

func TestTakeoverPromotesByHandWhilePaused(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	old := c.Leader()
	ctl(t, c, "pause")
	// While the primary lives, a takeover is refused and changes nothing.
	out, err := tryCtl(c, "takeover", "--yes")
	if err == nil || !strings.Contains(out, "primary gone") {
		t.Fatalf("takeover with a live primary: err=%v\n%s", err, out)
	}
	c.KillNode(old)
	c.WaitFor("the leader key to expire", 30*time.Second, func(r status.Report) bool { return r.Leader == "" })
	check := ctl(t, c, "takeover", "--check")
	if !strings.Contains(check, "[pass] primary gone") {
		t.Fatalf("takeover --check:\n%s", check)
	}
	ctl(t, c, "takeover", "--yes")
	r := c.WaitFor("a new primary", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	if !hasEvent(history(t, c), r.Leader, ha.Promote, time.Time{}) {
		t.Fatalf("takeover promotion of %s not recorded", r.Leader)
	}
}

func TestPlannedStopAllAndStartAllKeepsThePrimary(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	leader := c.Leader()
	began := time.Now()
	ctl(t, c, "stop", "--all")
	r, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Members {
		if m.State != "stopped (planned)" {
			t.Fatalf("%s is %s after stop --all", m.Name, m.State)
		}
	}
	if r.Leader != leader {
		t.Fatalf("leader changed from %s to %q during a planned stop", leader, r.Leader)
	}
	ctl(t, c, "start", "--all")
	r = c.WaitHealthy(60 * time.Second)
	if r.Leader != leader {
		t.Fatalf("leader changed from %s to %s after stop/start --all", leader, r.Leader)
	}
	for _, e := range history(t, c) {
		if e.Time.After(began) && (e.Action == ha.Promote || e.Action == ha.AcquireLeader && e.Node != leader) {
			t.Fatalf("a planned stop recorded a failover step: %+v", e)
		}
	}
}

func TestDetachedStandbyIsNeverPromoted(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	old := c.Leader()
	detached := others(c.Layout.Nodes, old)[0]
	ctl(t, c, "detach", detached)
	c.WaitFor(detached+" shown detached", 10*time.Second, func(r status.Report) bool { return member(r, detached).Detached })
	c.KillNode(old)
	r := c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	if r.Leader == detached {
		t.Fatalf("detached standby %s was promoted", detached)
	}
}

func TestSplitNodeIsShownAndReinitRebuildsIt(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	leader := c.Leader()
	victim := others(c.Layout.Nodes, leader)[0]
	if err := c.Layout.StopNode(victim, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// Replace its data directory with a stranger's: another system id.
	data := filepath.Join(c.Layout.NodeDir(victim), "data")
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	acct, _ := osuser.Resolve("")
	if err := acct.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust")
	acct.Apply(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.StartNode(victim)
	r := c.WaitFor(victim+" shown as split", 30*time.Second, func(r status.Report) bool { return member(r, victim).State == "split" })
	if !strings.Contains(member(r, victim).Problem, "reinit") {
		t.Fatalf("split reason does not say what to do: %q", member(r, victim).Problem)
	}
	if r.Leader != leader {
		t.Fatalf("a split node changed the leader to %s", r.Leader)
	}
	ctl(t, c, "reinit", victim, "--yes")
	c.WaitFor(victim+" streaming after reinit", 60*time.Second, streamingFrom(leader, victim))
	if !hasEvent(history(t, c), victim, ha.Reinit, time.Time{}) {
		t.Fatalf("reinit of %s not recorded", victim)
	}
}

func TestRollingRestartUnderLoadLosesNoWrite(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{})
	old := c.Leader()
	writes := c.StartWrites("writes flowing", c.Layout.DSN(), 10*time.Millisecond, 50)
	began := time.Now()
	ctl(t, c, "restart", "--rolling", "--yes")
	r := c.WaitHealthy(60 * time.Second)
	if r.Leader == old {
		t.Fatalf("rolling restart kept %s as primary: no switchover happened", old)
	}
	acks := writes.Stop()
	c.CheckNoWriteLost("rolling restart", acks)
	t.Logf("rolling restart: new primary %s, longest write gap %s, 0 of %d writes lost", r.Leader, testcluster.MaxGap(acks, began), len(acks))
}

// A killed standby is not shown as streaming for longer than its lease
// can outlive it: its record goes with the lease, or, when the record
// outlives that (an unchanged record is rewritten only every 10
// heartbeats, ha.MemberRecordMaxAge), ctl status says "unreachable" with
// the age, in the table and in JSON; ctl status --health fails naming it
// (issue 18 item 8). The standby whose etcd member leads raft is killed,
// so that the election refreshes every lease: the record then outlives
// the agent by an election and a TTL.
func TestKilledStandbyShowsUnreachableNotStreaming(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	ctlYAML := filepath.Join(c.Layout.Dir, "ctl.yaml")
	read := func() (status.Report, error) {
		out, err := exec.Command(c.Exe, "ctl", "-c", ctlYAML, "status", "-o", "json").Output()
		if err != nil {
			return status.Report{}, err
		}
		var r status.Report
		return r, json.Unmarshal(out, &r)
	}
	if out, err := tryCtl(c, "status", "--health", "--expect", "3"); err != nil {
		t.Fatalf("ctl status --health on a healthy cluster: %v\n%s", err, out)
	}
	r, err := read()
	if err != nil {
		t.Fatal(err)
	}
	victim := ""
	for _, m := range r.Store {
		if m.Leader && m.Name != r.Leader {
			victim = m.Name
		}
	}
	if victim == "" {
		victim = others(c.Layout.Nodes, r.Leader)[0]
	}
	c.KillNode(victim)
	killed := time.Now()
	ttl := r.LeaseTTLSeconds
	sawStale, sawGone := false, false
	for time.Since(killed) < 12*time.Second {
		r, err := read()
		if err != nil {
			time.Sleep(200 * time.Millisecond) // the store may be electing
			continue
		}
		m := member(r, victim)
		switch {
		case m.Name == "":
			sawGone = true
		case m.Stale:
			sawStale = true
			if m.State != "unreachable" || m.Streaming || m.Healthy {
				t.Fatalf("%s is stale but shown as %s (streaming %v, healthy %v)", victim, m.State, m.Streaming, m.Healthy)
			}
		case time.Since(killed).Seconds() > 2*ttl+1:
			t.Fatalf("%s killed %s ago (lease %.0fs) and still shown as %s/%s, its status %.1fs old",
				victim, time.Since(killed).Round(time.Millisecond), ttl, m.Role, m.State, m.AgeSeconds)
		}
		time.Sleep(200 * time.Millisecond) // polling ctl status
	}
	out, err := tryCtl(c, "status", "--health", "--expect", "3")
	if err == nil || !strings.Contains(out, victim) {
		t.Fatalf("ctl status --health after %s was killed: err %v, want a failure naming it:\n%s", victim, err, out)
	}
	t.Logf("after killing %s: shown as unreachable %v, record gone %v; --health says: %s", victim, sawStale, sawGone, strings.TrimSpace(out))
}

// A standby gone longer than slot_retention loses its slot on the
// primary (recorded in the history), so that it cannot hold WAL back
// without bound; when it returns it gets a new slot and streams again.
// The primary also runs with a max_slot_wal_keep_size by default.
func TestSlotOfALostStandbyIsDroppedAfterRetention(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		cfg.HA.SlotRetention = config.Duration(5 * time.Second)
	}})
	leader := c.Leader()
	victim := others(c.Layout.Nodes, leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.NodeDSN(leader))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var keep string
	if err := conn.QueryRow(ctx, `SHOW max_slot_wal_keep_size`).Scan(&keep); err != nil || keep == "-1" {
		t.Fatalf("max_slot_wal_keep_size on the primary is %q (%v): want a limit by default", keep, err)
	}
	slot := pg.SlotName(victim)
	hasSlot := func() bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if !hasSlot() {
		t.Fatalf("the primary has no slot %s for its standby", slot)
	}
	// The retention counts from the last loop of the primary's agent that
	// saw the victim stream. That loop's time is in the record it
	// published (UpdatedAt is the observation's clock), so wait until the
	// primary has published the victim as streaming: a kill right after
	// the clone, before any loop saw it stream, counts from when the
	// primary was promoted instead (as SlotMembers says).
	seen := primarySawStreaming(t, c, leader, victim)
	killed := time.Now()
	c.KillNode(victim)
	c.WaitFor("the slot of "+victim+" dropped and recorded", 60*time.Second, func(status.Report) bool {
		return hasEvent(history(t, c), leader, ha.EventDropSlot, killed) && !hasSlot()
	})
	for _, e := range history(t, c) {
		if e.Action == ha.EventDropSlot && e.Target != slot {
			t.Fatalf("dropped slot %s, want only %s: %+v", e.Target, slot, e)
		}
		if e.Action == ha.EventDropSlot && e.Time.Sub(seen) < 5*time.Second {
			t.Fatalf("slot dropped %s after the primary last published %s as streaming, before slot_retention (5s): %+v",
				e.Time.Sub(seen), victim, e)
		}
		if e.Action == ha.EventDropSlot {
			t.Logf("slot dropped %s after the kill, %s after the primary's last record of %s streaming",
				e.Time.Sub(killed).Round(time.Millisecond), e.Time.Sub(seen).Round(time.Millisecond), victim)
		}
	}
	c.StartNode(victim)
	c.WaitFor(victim+" streaming again", 60*time.Second, streamingFrom(leader, victim))
	c.WaitFor("a new slot for "+victim, 10*time.Second, func(status.Report) bool { return hasSlot() })
}

// One node paused: its crashed PostgreSQL stays down and it does not
// campaign, while the rest of the cluster fails over as usual; resumed,
// it rejoins (issue 18 item 5).
func TestPausedNodeTakesNoStepWhileTheClusterFailsOver(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	leader := c.Leader()
	paused, other := others(c.Layout.Nodes, leader)[0], others(c.Layout.Nodes, leader)[1]
	ctl(t, c, "pause", paused)
	c.WaitFor(paused+" shown as paused", 10*time.Second, func(r status.Report) bool { return member(r, paused).Paused })
	if out, err := tryCtl(c, "pause", "nosuchnode"); err == nil ||
		!strings.Contains(out, "unknown node") {
		t.Fatalf("pause of an unknown node: err %v\n%s", err, out)
	}
	crashed := time.Now()
	if err := c.Layout.KillPostmaster(paused); err != nil {
		t.Fatal(err)
	}
	for time.Since(crashed) < 5*time.Second {
		if pid := c.Layout.PostmasterPID(paused); pid != 0 && time.Since(crashed) > time.Second {
			t.Fatalf("paused %s restarted its PostgreSQL (pid %d)", paused, pid)
		}
		time.Sleep(200 * time.Millisecond) // sampling that it stays down
	}
	c.KillNode(leader)
	r := c.WaitFor("a new primary without the paused node", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != leader })
	if r.Leader != other {
		t.Fatalf("the paused %s became primary", r.Leader)
	}
	for _, e := range history(t, c) {
		if e.Node == paused && e.Time.After(crashed) && (e.Action == ha.StartStandby || e.Action == ha.CrashRecover || e.Action == ha.AcquireLeader) {
			t.Fatalf("paused %s acted: %+v", paused, e)
		}
	}
	ctl(t, c, "resume", paused)
	c.WaitFor(paused+" streaming from "+other+" once resumed", 60*time.Second, streamingFrom(other, paused))
}

// A standby that reaches none of its trusted addresses shows as isolated
// and does not campaign: the primary's loss makes the other standby
// primary, even where the isolated one would have won (HA-10, issue 14
// item 7).
func TestIsolatedStandbyDoesNotCampaign(t *testing.T) {
	// Every node trusts one address of its own, a listener of this test.
	listeners := map[string]net.Listener{}
	ports := map[string]int{}
	for _, n := range []string{"n1", "n2", "n3"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners[n], ports[n] = ln, ln.Addr().(*net.TCPAddr).Port
		go acceptAndClose(ln)
		defer ln.Close()
	}
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		cfg.HA.TrustedAddresses = []string{fmt.Sprintf("127.0.0.1:%d", ports[cfg.Name])}
	}})
	leader := c.Leader()
	standbys := others(c.Layout.Nodes, leader)
	sort.Strings(standbys)
	isolated, other := standbys[0], standbys[1] // the first name wins a tie: isolate it
	listeners[isolated].Close()
	c.WaitFor(isolated+" shown as isolated", 15*time.Second, func(r status.Report) bool {
		return strings.Contains(member(r, isolated).Problem, "isolated")
	})
	c.KillNode(leader)
	r := c.WaitFor("a new primary", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != leader })
	if r.Leader != other {
		t.Fatalf("the isolated %s became primary", r.Leader)
	}
	found := false
	for _, e := range history(t, c) {
		found = found || (e.Node == isolated && e.Action == ha.EventIsolated)
	}
	if !found {
		t.Fatalf("no 'isolated' event of %s in the history", isolated)
	}
	// Reachable again: the problem clears and it follows the new primary.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[isolated]))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	c.WaitFor(isolated+" connected and streaming from "+other, 60*time.Second, func(r status.Report) bool {
		return streamingFrom(other, isolated)(r) && !strings.Contains(member(r, isolated).Problem, "isolated")
	})
}

// acceptAndClose answers every connection to ln by closing it, until ln
// is closed: an address that is reachable.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// primarySawStreaming waits until the primary's own record shows standby
// streaming from it (its pg_stat_replication, as its agent observed it)
// and returns that observation's time.
func primarySawStreaming(t *testing.T, c *testcluster.Cluster, primary, standby string) time.Time {
	t.Helper()
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		cl, err := store.Load(ctx)
		cancel()
		if err != nil {
			last = err.Error()
		} else if m, ok := cl.Members[primary]; !ok {
			last = primary + " has no record"
		} else if r, ok := m.Replication[standby]; !ok || r.State != "streaming" {
			last = fmt.Sprintf("%s's record at %s shows %s as %+v", primary, m.UpdatedAt.Format(time.StampMilli), standby, r)
		} else {
			return m.UpdatedAt
		}
		time.Sleep(100 * time.Millisecond) // polling the store
	}
	t.Fatalf("%s never published %s as streaming within 30s; last seen: %s", primary, standby, last)
	return time.Time{}
}
