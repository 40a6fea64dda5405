package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Which cluster a test starts. A test of what clients see across a
// failover, a switchover or a restart (lost writes, write gaps, two
// writable primaries, routing) starts the cluster as `pgguard demo up`
// ships it, testcluster.StartShipped: WAL archived into a repository and
// the default jobs installed, so a first full backup runs beside it. A
// test of one mechanism (a step's preconditions, pausing, fencing by
// hand, TLS, jobs, alerts, callbacks, the store's leadership, adding or
// removing a node) starts testcluster.StartCluster, with archiving off
// unless WithBackupRepo turns it on, so that its cluster does nothing the
// test does not ask for.

func others(all []string, not string) []string {
	var out []string
	for _, n := range all {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

func history(t *testing.T, c *testcluster.Cluster) []dcs.Event {
	t.Helper()
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ev, err := store.History(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func hasEvent(events []dcs.Event, node string, action ha.Kind, after time.Time) bool {
	for _, e := range events {
		if e.Node == node && e.Action == action && e.Time.After(after) && strings.HasPrefix(e.Result, "ok") {
			return true
		}
	}
	return false
}

// streamingFrom holds when every one of nodes is a standby streaming from
// leader on the leader's timeline. A diverged former primary's receiver
// streams the old timeline from the new primary for a moment before the
// startup process refuses the fork ("new timeline 2 forked off current
// database system timeline 1 before current recovery point"); seen
// streaming then, it has not rejoined (its rewind comes later).
func streamingFrom(leader string, nodes ...string) func(status.Report) bool {
	return func(r status.Report) bool {
		if r.Leader != leader {
			return false
		}
		tli := 0
		for _, m := range r.Members {
			if m.Name == leader {
				tli = m.Timeline
			}
		}
		ok := 0
		for _, m := range r.Members {
			for _, n := range nodes {
				if m.Name == n && m.Role == "standby" && m.Streaming && m.Following == leader && m.Timeline == tli {
					ok++
				}
			}
		}
		return tli != 0 && ok == len(nodes)
	}
}

func TestHostLossFailsOverAndOldPrimaryRejoins(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{})
	ctx := context.Background()
	old := c.Leader()
	nodes := testcluster.StartNodeProbe(ctx, c.NodeDSNs(), 50*time.Millisecond)
	writes := c.StartWrites("writes flowing", c.Layout.DSN(), 10*time.Millisecond, 20)

	killed := time.Now()
	c.KillNode(old)
	r := c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	newLeader := r.Leader
	rest := others(others(c.Layout.Nodes, old), newLeader)
	c.WaitFor("the other standby to follow "+newLeader, 30*time.Second, streamingFrom(newLeader, rest...))
	c.WaitFor("writes on the new primary", 10*time.Second, func(status.Report) bool {
		return writes.AckedAfter(killed.Add(time.Second)) && c.Layout.AgentPID(old) == 0
	})
	t.Logf("host loss of %s: %s promoted, write gap %s", old, newLeader, testcluster.MaxGap(writes.Acks(), killed))

	restarted := time.Now()
	c.StartNode(old)
	c.WaitFor(old+" to rejoin as a streaming standby", 60*time.Second, streamingFrom(newLeader, append(rest, old)...))
	acks := writes.Stop()
	nodes.Stop()

	events := history(t, c)
	if !hasEvent(events, old, ha.Rewind, restarted) {
		t.Errorf("%s rejoined without a recorded rewind; history: %+v", old, events)
	}
	if !hasEvent(events, newLeader, ha.Promote, killed) {
		t.Errorf("no promote of %s recorded", newLeader)
	}
	if sb := nodes.SplitBrain(); len(sb) > 0 {
		t.Errorf("%d probe rounds saw two writable nodes, first: %+v", len(sb), sb[0])
	}
	if nodes.Rounds() < 10 {
		t.Errorf("node probe ran only %d rounds", nodes.Rounds())
	}
	if len(acks) < 50 {
		t.Errorf("only %d writes acknowledged", len(acks))
	}
}

// On the cluster as shipped: the restart keeps the WAL stream's slot
// (the loop after the restart used to drop it as a departed member's
// before the stream started again).
func TestPostmasterCrashRestartsInPlaceWithoutFailover(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{})
	leader := c.Leader()
	before, _ := c.Status()
	tl := 0
	for _, m := range before.Members {
		if m.Name == leader {
			tl = m.Timeline
		}
	}
	// Segments the WAL stream stores after the last checkpoint: the
	// slot's restart_lsn on disk is behind them, and after the crash the
	// stream must not read them again (a switchover right after a crash
	// waited seconds for that).
	var seg string
	for range 3 {
		seg = sqlOn(t, c.NodeDSN(leader), []string{"CREATE TABLE IF NOT EXISTS walfill (x int)", "INSERT INTO walfill VALUES (1)", "SELECT pg_switch_wal()"},
			"SELECT pg_walfile_name(pg_current_wal_lsn())")
	}
	c.WaitFor("the stream to store the segments before "+seg, 30*time.Second, func(status.Report) bool {
		_, err := os.Stat(filepath.Join(c.RepoDir(), "wal", seg[:8], prevSegment(t, seg)))
		return err == nil
	})
	writes := c.StartWrites("writes flowing", c.Layout.DSN(), 10*time.Millisecond, 20)
	crashed := time.Now()
	if err := c.Layout.KillPostmaster(leader); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("writes after the crash", 30*time.Second, func(status.Report) bool { return writes.AckedAfter(crashed.Add(500 * time.Millisecond)) })
	from := streamStartAfter(t, filepath.Join(c.Layout.NodeDir(leader), "agent.log"), crashed)
	if want := segmentStart(t, seg); from < want {
		t.Fatalf("after the crash the WAL stream started at %s, before %s (the start of %s): it read segments the repository holds again", from, want, seg)
	}
	acks := writes.Stop()
	r := c.WaitHealthy(30 * time.Second)
	if r.Leader != leader {
		t.Fatalf("leader changed from %s to %s after a postmaster crash", leader, r.Leader)
	}
	for _, m := range r.Members {
		if m.Name == leader && m.Timeline != tl {
			t.Fatalf("timeline moved from %d to %d: the primary was not restarted in place", tl, m.Timeline)
		}
	}
	for _, e := range history(t, c) {
		if e.Action == ha.Promote && e.Time.After(crashed) {
			t.Fatalf("a promotion was recorded after a postmaster crash: %+v", e)
		}
		if e.Action == ha.EventDropSlot && e.Target == pg.ArchiveSlot {
			t.Fatalf("the WAL stream's slot was dropped: %+v", e)
		}
		// The dead postmaster's children are ended before the restart,
		// which therefore never finds the old shared memory in use.
		if e.Action == ha.StartPrimary && e.Time.After(crashed) && !strings.HasPrefix(e.Result, "ok") {
			t.Errorf("a restart in place failed: %+v", e)
		}
	}
	c.CheckNoWriteLost("restart in place", acks)
	t.Logf("postmaster crash on %s: restarted in place, write gap %s", leader, testcluster.MaxGap(acks, crashed))
}

func TestPrimaryCutOffFromStoreStopsWritesBeforeAnotherIsPromoted(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{ExternalEtcd: true})
	ctx := context.Background()
	old := c.Leader()
	nodes := testcluster.StartNodeProbe(ctx, c.NodeDSNs(), 20*time.Millisecond)
	c.WaitFor("probe rounds", 10*time.Second, func(status.Report) bool { return !nodes.LastWritable(old).IsZero() })

	cut := time.Now()
	c.StoreProxies[old].Cut()
	r := c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	c.WaitFor("the new leader to accept writes", 10*time.Second, func(status.Report) bool {
		return !nodes.FirstWritable(r.Leader).IsZero()
	})
	lastOld, firstNew := nodes.LastWritable(old), nodes.FirstWritable(r.Leader)
	if !lastOld.Before(firstNew) {
		t.Fatalf("old primary %s accepted writes at %s, after %s first did at %s", old, lastOld.Format(time.StampMilli), r.Leader, firstNew.Format(time.StampMilli))
	}
	t.Logf("cut at %s: %s last writable %s later, %s first writable %s later",
		cut.Format(time.StampMilli), old, lastOld.Sub(cut).Round(time.Millisecond), r.Leader, firstNew.Sub(cut).Round(time.Millisecond))

	c.StoreProxies[old].Restore()
	c.WaitFor(old+" to rejoin as a standby", 60*time.Second, streamingFrom(r.Leader, others(c.Layout.Nodes, r.Leader)...))
	nodes.Stop()
	if sb := nodes.SplitBrain(); len(sb) > 0 {
		t.Fatalf("%d probe rounds saw two writable nodes, first: %+v", len(sb), sb[0])
	}
}

func TestPrimaryAgentKilledNeverLeavesTwoWritablePrimaries(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{})
	ctx := context.Background()
	old := c.Leader()
	nodes := testcluster.StartNodeProbe(ctx, c.NodeDSNs(), 50*time.Millisecond)
	c.WaitFor("probe rounds", 10*time.Second, func(status.Report) bool { return !nodes.LastWritable(old).IsZero() })
	killed := time.Now()
	if err := c.Layout.KillAgent(old); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the old primary to stop accepting writes", 10*time.Second, func(status.Report) bool {
		return nodes.LastWritable(old).Before(time.Now().Add(-500 * time.Millisecond))
	})
	r := c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	c.StartNode(old)
	c.WaitFor(old+" back as a standby", 60*time.Second, streamingFrom(r.Leader, others(c.Layout.Nodes, r.Leader)...))
	nodes.Stop()
	if sb := nodes.SplitBrain(); len(sb) > 0 {
		t.Fatalf("%d probe rounds saw two writable nodes after the primary's agent died, first: %+v", len(sb), sb[0])
	}
	t.Logf("agent of %s killed: its PostgreSQL stopped accepting writes %s later; %s took over", old,
		nodes.LastWritable(old).Sub(killed).Round(time.Millisecond), r.Leader)
}

// Chaos finding: a primary promoted and killed before anyone saw its
// timeline history must not have its timeline ID reused. The store records
// the highest timeline reserved; here it claims 5 were used, so the next
// promotion takes timeline 6 and the old primary still rejoins.
func TestPromotionTakesATimelineAboveEveryReservedOne(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	old := c.Leader()
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = store.Client().Put(ctx, "/pgguard/"+c.Layout.Cluster+"/timeline", "5")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	c.KillNode(old)
	r := c.WaitFor("a new primary on timeline 6", 30*time.Second, func(r status.Report) bool {
		for _, m := range r.Members {
			if m.Name == r.Leader && m.Name != old && m.Role == "primary" && m.Timeline == 6 {
				return true
			}
		}
		return false
	})
	c.StartNode(old)
	c.WaitFor(old+" back as a standby", 60*time.Second, streamingFrom(r.Leader, others(c.Layout.Nodes, r.Leader)...))
}

// prevSegment is the name of the 16 MiB segment before seg.
func prevSegment(t *testing.T, seg string) string {
	t.Helper()
	tli, no, ok := lsn.ParseSegmentName(seg, 16<<20)
	if !ok || no == 0 {
		t.Fatalf("segment name %q", seg)
	}
	return lsn.SegmentName(tli, no-1, 16<<20)
}

// segmentStart is the position where the 16 MiB segment seg begins.
func segmentStart(t *testing.T, seg string) lsn.LSN {
	t.Helper()
	_, no, ok := lsn.ParseSegmentName(seg, 16<<20)
	if !ok {
		t.Fatalf("segment name %q", seg)
	}
	return lsn.LSN(no * (16 << 20))
}

// streamStartAfter is the position of the first "WAL stream started"
// line of the agent log logged after since, polled for up to 30 s.
func streamStartAfter(t *testing.T, log string, since time.Time) lsn.LSN {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no such line"
	for {
		b, _ := os.ReadFile(log)
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `msg="WAL stream started"`) {
				continue
			}
			at, from := field(line, "time"), field(line, "from")
			when, err := time.Parse(time.RFC3339Nano, at)
			if err != nil || !when.After(since) {
				last = line
				continue
			}
			pos, err := lsn.Parse(from)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return pos
		}
		if time.Now().After(deadline) {
			t.Fatalf("no WAL stream start after %s in %s; last seen: %s", since.Format(time.StampMilli), log, last)
		}
		time.Sleep(100 * time.Millisecond) // polling a log file, with the deadline above
	}
}

// field is the value of key=value in a text log line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
