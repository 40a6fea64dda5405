package dcs

import (
	"encoding/json"
	"testing"

	"github.com/pgguard/pgguard/internal/ha"
)

// History entries stay in the store across upgrades: an entry written
// before Event.Action had a type of its own must read as the same kind and
// write back byte for byte. The stored bytes are spelled out on purpose;
// they are the wire format, not a use of the event names.
func TestHistoryEntryWireFormatIsUnchanged(t *testing.T) {
	cases := []struct {
		name   string
		stored string
		want   ha.Kind
	}{
		{"an operator's request (an Event kind)",
			`{"time":"2026-11-23T10:00:00.5Z","node":"ctl","action":"switchover-request","target":"n3","reason":"planned","result":"ok","by":"alice"}`,
			ha.EventSwitchoverRequest},
		{"a plan step the agent took (a step kind)",
			`{"time":"2026-11-23T10:00:01Z","node":"n3","action":"promote","result":"ok in 100ms"}`,
			ha.Promote},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e Event
			if err := json.Unmarshal([]byte(tc.stored), &e); err != nil {
				t.Fatalf("decode %s: %v", tc.stored, err)
			}
			if e.Action != tc.want {
				t.Fatalf("decoded action %q, want %q", e.Action, tc.want)
			}
			again, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != tc.stored {
				t.Fatalf("encoded again as\n%s\nwant the stored bytes\n%s", again, tc.stored)
			}
		})
	}
}
