package status

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

func TestBuildReportsLagSyncAndOperation(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cfg := ha.DefaultClusterConfig()
	cfg.Mode = ha.ModeSync
	c := ha.Cluster{
		SystemID: "42", Leader: &ha.Leader{Name: "n1"}, Config: cfg,
		Sync:       &ha.SyncState{Leader: "n1", Members: []string{"n2"}, Quorum: 1},
		Switchover: &ha.Switchover{From: "n1", To: "n2"},
		Members: map[string]ha.Member{
			"n1": {Name: "n1", Role: ha.RolePrimary, Healthy: true, WalLSN: 0x3000100, UpdatedAt: now,
				Replication: map[string]ha.Replica{"n2": {State: "streaming", SyncState: "sync", SentLSN: 0x3000100, FlushLSN: 0x3000080, ReplayLagSeconds: 0.25}}},
			"n2": {Name: "n2", Role: ha.RoleStandby, Healthy: true, Streaming: true, ReceivedLSN: 0x3000080, ReplayedLSN: 0x3000000, UpdatedAt: now},
			"n3": {Name: "n3", Role: ha.RoleStandby, Healthy: true, Streaming: true, ReceivedLSN: 0x3000000, UpdatedAt: now.Add(-2 * time.Second)},
		},
	}
	r := Build("main", c, 3*time.Second, now)
	if r.Leader != "n1" || len(r.Members) != 3 || r.Mode != "sync" {
		t.Fatalf("report header wrong: %+v", r)
	}
	n2, n3 := r.Members[1], r.Members[2]
	if n2.LagBytes != 0x80 || !n2.Sync || n2.FlushedLSN != "0/3000080" || n2.LagSeconds != 0.25 {
		t.Fatalf("n2 row wrong: %+v", n2)
	}
	if n3.LagBytes != 0x100 || n3.Sync || n3.AgeSeconds != 2 {
		t.Fatalf("n3 row wrong: %+v", n3)
	}
	if r.Operation != "switchover n1 → n2" {
		t.Fatalf("operation = %q", r.Operation)
	}
	if r.Healthy(3) != true {
		t.Fatalf("cluster with one primary and two streaming standbys should be healthy")
	}
	data, _ := json.Marshal(r)
	for _, key := range []string{`"cluster":"main"`, `"leader":"n1"`, `"members":[`, `"lag_bytes":128`, `"timeline"`, `"host"`, `"port"`} {
		if !strings.Contains(string(data), key) {
			t.Fatalf("JSON lacks %s: %s", key, data)
		}
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil || !strings.Contains(b.String(), "operation: switchover n1 → n2") {
		t.Fatalf("table: %v\n%s", err, b.String())
	}
}

// A member whose record is older than a live agent lets it grow
// (ha.MemberRecordMaxAge: 13 s with a 3 s lease) is shown as unreachable,
// in the table, in JSON and in Healthy (issue 18 item 8: a standby killed
// earlier still showed as "standby streaming").
func TestStaleMemberIsUnreachable(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := ha.Cluster{SystemID: "42", Leader: &ha.Leader{Name: "n1"}, Config: ha.DefaultClusterConfig(),
		Members: map[string]ha.Member{
			"n1": {Name: "n1", Role: ha.RolePrimary, State: "running", Healthy: true, UpdatedAt: now.Add(-time.Second)},
			"n2": {Name: "n2", Role: ha.RoleStandby, State: "streaming", Healthy: true, Streaming: true, UpdatedAt: now.Add(-12900 * time.Millisecond)},
			"n3": {Name: "n3", Role: ha.RoleStandby, State: "streaming", Healthy: true, Streaming: true, UpdatedAt: now.Add(-13100 * time.Millisecond)},
		}}
	r := Build("main", c, 3*time.Second, now)
	n2, n3 := r.Members[1], r.Members[2]
	if n2.Stale || n2.State != "streaming" {
		t.Fatalf("n2 (12.9 s old, lease 3 s) shown as %+v, want streaming", n2)
	}
	if !n3.Stale || n3.State != "unreachable" || n3.LastState != "streaming" || n3.Healthy || n3.Streaming {
		t.Fatalf("n3 (13.1 s old) shown as %+v, want stale, unreachable, last state streaming", n3)
	}
	if r.Healthy(3) {
		t.Fatal("a cluster with a stale member counts as healthy")
	}
	if p := r.Problems(3); len(p) != 1 || !strings.Contains(p[0], "n3 unreachable: last status 13.1s ago") {
		t.Fatalf("problems = %q", p)
	}
	data, _ := json.Marshal(r)
	if !strings.Contains(string(data), `"state":"unreachable"`) || !strings.Contains(string(data), `"stale":true`) {
		t.Fatalf("JSON does not say n3 is unreachable: %s", data)
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil || !strings.Contains(b.String(), "unreachable (last: standby streaming)") {
		t.Fatalf("table does not say n3 is unreachable: %v\n%s", err, b.String())
	}
}
