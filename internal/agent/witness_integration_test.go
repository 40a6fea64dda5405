package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Two database nodes and a witness (HA-18, issue 14 item 6): the witness
// shows as such and holds no slot; losing it alone changes nothing; losing
// the primary's host fails over as in a three-node cluster.
func TestWitnessTwoNodeCluster(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Nodes: 3, Witness: true})
	r, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if w := member(r, "w1"); w.Role != "witness" {
		t.Fatalf("w1 shows as %s/%s, want witness", w.Role, w.State)
	}
	if r.Leader == "w1" {
		t.Fatal("the witness leads")
	}
	leader := r.Leader
	standby := "n1"
	if leader == "n1" {
		standby = "n2"
	}
	for _, e := range history(t, c) {
		if strings.Contains(e.Target, "w1") && e.Action != ha.EventCallback {
			t.Fatalf("a step aimed at the witness: %+v", e)
		}
	}

	conn, err := pgx.Connect(context.Background(), c.NodeDSN(leader))
	if err != nil {
		t.Fatal(err)
	}
	var slots []string
	rows, err := conn.Query(context.Background(), `SELECT slot_name FROM pg_replication_slots ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		slots = append(slots, s)
	}
	conn.Close(context.Background())
	if strings.Join(slots, ",") != "pgguard_"+standby {
		t.Fatalf("slots on the primary: %v, want only pgguard_%s (none for the witness)", slots, standby)
	}

	// The witness alone goes: nothing changes.
	lost := time.Now()
	c.KillNode("w1")
	c.WaitFor("w1's record gone", 30*time.Second, func(r status.Report) bool { return member(r, "w1").Name == "" || member(r, "w1").Stale })
	r = c.WaitFor("the same primary, its standby streaming", 10*time.Second, streamingFrom(leader, standby))
	for _, e := range history(t, c) {
		if e.Time.After(lost) && (e.Action == ha.Fence || e.Action == ha.Promote || e.Action == ha.AcquireLeader) {
			t.Fatalf("losing the witness alone made %s %s", e.Node, e.Action)
		}
	}
	c.StartNode("w1")
	c.WaitFor("w1 back", 30*time.Second, func(r status.Report) bool { return member(r, "w1").Role == "witness" })

	// The primary's host goes: the standby takes over, with the witness's
	// vote making the store's majority.
	c.KillNode(leader)
	c.WaitFor(standby+" primary", 30*time.Second, func(r status.Report) bool { return r.Leader == standby })
	c.StartNode(leader)
	c.WaitFor(leader+" streaming from "+standby, 60*time.Second, streamingFrom(standby, leader))
}
