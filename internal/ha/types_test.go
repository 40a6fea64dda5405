package ha

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// goldenMember is a member record as agents published it in the cluster
// store before LSNs had a package of their own: LSNs in their text form.
// Agents of both versions read each other's records during an upgrade.
const goldenMember = `{"name":"n1","host":"","port":0,"role":"standby","state":"","healthy":false,"timeline":2,"wal_lsn":"16/B374D848","received_lsn":"0/1","replayed_lsn":"FFFFFFFF/FFFFFFFF","streaming":false,"history":[{"tli":1,"lsn":"0/3000000"}],"updated_at":"2026-01-02T03:04:05Z","replication":{"n2":{"state":"streaming","sync_state":"","sent_lsn":"0/5","flush_lsn":"1/0","replay_lsn":"0/0","replay_lag_seconds":0}}}`

func TestMemberEncodingIsUnchanged(t *testing.T) {
	m := Member{Name: "n1", Role: RoleStandby, Timeline: 2, WalLSN: 0x16B374D848, ReceivedLSN: 1, ReplayedLSN: 0xFFFFFFFFFFFFFFFF,
		UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), History: []TimelineSwitch{{TLI: 1, Switch: 0x3000000}},
		Replication: map[string]Replica{"n2": {State: "streaming", SentLSN: 5, FlushLSN: 0x100000000}}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != goldenMember {
		t.Fatalf("member encodes as\n%s\nwant what older agents publish and read\n%s", b, goldenMember)
	}
	var back Member
	if err := json.Unmarshal([]byte(goldenMember), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("decoded %+v, want %+v", back, m)
	}
	if b, _ := json.Marshal(Member{}); string(b) != `{"name":"","host":"","port":0,"role":"","state":"","healthy":false,"timeline":0,"streaming":false,"updated_at":"0001-01-01T00:00:00Z"}` {
		t.Fatalf("zero LSNs are no longer left out: %s", b)
	}
}
