package walspool

import "testing"

// The push waits for the WAL stream only for files the stream will store.
func TestStreamStoresOnlyItsTimelineFromItsFirstSegment(t *testing.T) {
	const first = "00000007000000000000005B"
	cases := []struct {
		name string
		want bool
	}{
		{"00000007000000000000005B", true},
		{"000000070000000100000000", true},
		{"00000007.history", true},
		{"00000007000000000000005A", false}, // before the stream's start
		{"00000006000000000000005B", false}, // an older timeline's segment
		{"00000006.history", false},
		{"00000006000000000000005B.partial", false},
		{"00000007000000000000005B.00000028.backup", false},
		{"00000008000000000000005C", false},
	}
	for _, c := range cases {
		if got := streamStores(first, c.name); got != c.want {
			t.Errorf("streamStores(%s, %s) = %v, want %v", first, c.name, got, c.want)
		}
	}
	// A mark without a segment name (an agent before this change): wait.
	if !streamStores("", "00000006000000000000005B") {
		t.Error("an empty mark must keep the old behaviour (wait for the stream)")
	}
}
