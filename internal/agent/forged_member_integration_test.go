package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Issue 13: a member record forged in the store (the leader's, pointing at
// another host) must not redirect a standby's replication, and with it the
// replication password, to that host: the agent connects only to the
// configured peers' hosts.
func TestForgedMemberRecordDoesNotRedirectReplication(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{})
	leader := c.Leader()
	victim := others(c.Layout.Nodes, leader)[0]
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key := "/pgguard/" + c.Layout.Cluster + "/members/" + leader
	const forgedHost = "127.0.0.2"
	forge := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := store.Client().Get(ctx, key)
		if err != nil || len(resp.Kvs) == 0 {
			return
		}
		var m map[string]any
		if json.Unmarshal(resp.Kvs[0].Value, &m) != nil {
			return
		}
		m["host"] = forgedHost
		b, _ := json.Marshal(m)
		_, _ = store.Client().Put(ctx, key, string(b))
	}
	conf := filepath.Join(c.Layout.NodeDir(victim), "data", "pgguard.conf")
	refused := func() bool {
		for _, e := range history(t, c) {
			if e.Node == victim && strings.Contains(e.Result, "not one of the configured peers") {
				return true
			}
		}
		return false
	}
	// Restart the victim's PostgreSQL while the leader's record is forged
	// over and over (its agent republishes it every loop): the restart
	// writes primary_conninfo from the record it sees. The agent restarts
	// a crashed postmaster at once, so the first restart may still read
	// the real record between two forgeries: crash it again (a few times
	// at most) until a restart has met the forged one.
	sawForged := false
	for attempt := 0; attempt < 5 && !sawForged; attempt++ {
		forge()
		if err := c.Layout.KillPostmaster(victim); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			forge()
			if data, err := os.ReadFile(conf); err == nil && strings.Contains(string(data), forgedHost) {
				t.Fatalf("%s's primary_conninfo points at the forged host:\n%s", victim, data)
			}
			time.Sleep(50 * time.Millisecond) // the forgery's pace (the agent republishes at every heartbeat, a third of the TTL), not a wait for a state
		}
		sawForged = refused()
		for c.Layout.PostmasterPID(victim) == 0 && !sawForged && time.Now().Before(deadline.Add(10*time.Second)) {
			time.Sleep(100 * time.Millisecond) // poll until the next crash can be injected
		}
	}
	if !sawForged {
		t.Fatalf("%s never acted on the forged record (no refusal in the history), so this test proved nothing", victim)
	}
	// Once the forgery stops, the victim streams from the real leader.
	c.WaitFor(victim+" streaming from "+leader, 60*time.Second, func(r status.Report) bool {
		return streamingFrom(leader, victim)(r)
	})
	data, _ := os.ReadFile(conf)
	if strings.Contains(string(data), forgedHost) {
		t.Fatalf("%s's configuration names the forged host:\n%s", victim, data)
	}
}
