package backup

import (
	"testing"

	"github.com/pgguard/pgguard/internal/lsn"
)

func TestStopWALFollowsTheSegmentSize(t *testing.T) {
	cases := []struct {
		start       string
		startLSN    lsn.LSN
		stopLSN     lsn.LSN
		want        string
		description string
	}{
		{"000000010000000000000002", 0x2000028, 0x2000138, "000000010000000000000002", "16 MiB, same segment"},
		{"0000000300000000000000FF", 0xFF000028, 0x1_00000100, "000000030000000100000000", "16 MiB, across a log file"},
		{"000000010000000000000020", 0x2000028, 0x2100000, "000000010000000000000021", "1 MiB segments"},
		{"00000001000000000000000X", 0x2000028, 0x2000100, "", "not a segment name"},
	}
	for _, c := range cases {
		if got := stopWAL(c.start, c.startLSN, c.stopLSN); got != c.want {
			t.Errorf("%s: stopWAL(%s, %s, %s) = %q, want %q", c.description, c.start, c.startLSN, c.stopLSN, got, c.want)
		}
	}
}
