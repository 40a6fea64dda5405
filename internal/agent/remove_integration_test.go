package agent_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// ctl remove decommissions a lost standby for good (issue 18 item 4): it
// is refused while the node's agent runs and for the primary; once done,
// the node's etcd member has left the store, the primary holds no slot for
// it, status no longer lists it, the history says who removed it, and the
// two remaining nodes carry on taking writes.
func TestRemoveDecommissionsALostStandby(t *testing.T) {
	c, leader, victim := startWithStreamingStandby(t, 1)
	if out, err := tryCtl(c, "remove", victim, "--check"); err == nil || !strings.Contains(out, "[FAIL] its agent is gone") {
		t.Fatalf("remove of a running standby --check: err %v\n%s", err, out)
	}
	if out, err := tryCtl(c, "remove", leader, "--yes"); err == nil || !strings.Contains(out, "[FAIL] not the primary") {
		t.Fatalf("remove of the primary: err %v\n%s", err, out)
	}

	c.KillNode(victim)
	// Its status record goes with its member lease.
	c.WaitFor(victim+"'s status record gone", 60*time.Second, func(r status.Report) bool {
		for _, m := range r.Members {
			if m.Name == victim {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := pgx.Connect(ctx, c.NodeDSN(leader))
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(ctx)
	slots := func() string {
		var s string
		if err := primary.QueryRow(ctx, `SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := slots(); !strings.Contains(s, victim) {
		t.Fatalf("before the removal the primary should keep %s's slot (slot_retention); slots: %q", victim, s)
	}
	if out, err := tryCtl(c, "remove", victim, "--check"); err != nil || !strings.Contains(out, "[pass] store keeps a quorum") {
		t.Fatalf("remove --check of the lost standby: err %v\n%s", err, out)
	}
	if out, err := tryCtl(c, "remove", victim, "--yes"); err != nil || !strings.Contains(out, "etcd member") {
		t.Fatalf("remove of the lost standby: err %v\n%s", err, out)
	}

	c.WaitFor(victim+" gone from the store and its slot dropped", 60*time.Second, func(status.Report) bool {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		r, err := c.Layout.StatusWithStore(sctx)
		if err != nil {
			return false
		}
		for _, m := range r.Store {
			if m.Name == victim {
				return false
			}
		}
		return len(r.Store) == 2 && !strings.Contains(slots(), victim)
	})
	var cfg struct {
		Removed []string `json:"removed"`
	}
	if err := json.Unmarshal([]byte(ctl(t, c, "config", "-o", "json")), &cfg); err != nil || len(cfg.Removed) != 1 || cfg.Removed[0] != victim {
		t.Fatalf("config after the removal: %+v (%v)", cfg, err)
	}
	if !hasEvent(history(t, c), "ctl", ha.EventRemove, time.Time{}) {
		t.Fatal("no remove entry in the history")
	}
	// The two remaining nodes still form a cluster that takes writes and
	// replicates them.
	if _, err := primary.Exec(ctx, `CREATE TABLE after_remove AS SELECT 1 AS x`); err != nil {
		t.Fatal(err)
	}
	other := others(c.Layout.Nodes, leader)[0]
	c.WaitFor(other+" streaming after the removal", 60*time.Second, func(r status.Report) bool {
		return member(r, other).Streaming && r.Leader == leader
	})
	if out, err := tryCtl(c, "status", "--health", "--expect", "2"); err != nil {
		t.Fatalf("status --health --expect 2 after the removal: %v\n%s", err, out)
	}
}

// A fourth node joins a running three-node cluster (docs/ADD-A-NODE.md):
// ctl add makes room for its etcd member and names the initial_cluster
// its node.yaml carries; its agent then joins the store, clones the
// primary and streams, and the store has four voting members.
func TestAddAFourthNodeToARunningCluster(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Nodes: 4, Later: []string{"n4"}})
	leader := c.Leader()
	n4, err := c.Layout.NodeConfig("n4")
	if err != nil {
		t.Fatal(err)
	}
	out, err := tryCtl(c, "add", "n4", "--peer-url", n4.Etcd.Embed.PeerURL, "--check")
	if err != nil || !strings.Contains(out, "[pass] store keeps a quorum") {
		t.Fatalf("add --check: %v\n%s", err, out)
	}
	if out, err := tryCtl(c, "add", leader, "--peer-url", n4.Etcd.Embed.PeerURL); err == nil || !strings.Contains(out, "[FAIL] new name") {
		t.Fatalf("add of an existing member's name: %v\n%s", err, out)
	}
	var res struct {
		InitialCluster string `json:"initial_cluster"`
	}
	if err := json.Unmarshal([]byte(ctl(t, c, "add", "n4", "--peer-url", n4.Etcd.Embed.PeerURL, "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Layout.Nodes {
		if !strings.Contains(res.InitialCluster, n+"=") {
			t.Fatalf("initial_cluster %q printed by ctl add lacks %s", res.InitialCluster, n)
		}
	}
	c.StartNode("n4")
	c.WaitFor("n4 streaming from "+leader, 120*time.Second, func(r status.Report) bool {
		m := member(r, "n4")
		return m.Streaming && m.Following == leader
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Layout.StatusWithStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reachable := 0
	for _, m := range r.Store {
		if m.Reachable {
			reachable++
		}
	}
	if len(r.Store) != 4 || reachable != 4 {
		t.Fatalf("store after the addition: %+v; want 4 members answering", r.Store)
	}
	if !hasEvent(history(t, c), "ctl", ha.EventAdd, time.Time{}) {
		t.Fatal("no add entry in the history")
	}
}
