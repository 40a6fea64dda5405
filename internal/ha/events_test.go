package ha

import "testing"

func TestDiskLevelEvent(t *testing.T) {
	cases := []struct {
		name  string
		level DiskLevel
		want  Kind
	}{
		{"space back above disk.warn is recorded as ok", DiskOK, EventDiskOK},
		{"space below disk.warn is recorded as warn", DiskWarn, EventDiskWarn},
		{"space below disk.critical is recorded as critical", DiskCritical, EventDiskCritical},
	}
	for _, tc := range cases {
		if got := tc.level.Event(); got != tc.want {
			t.Errorf("%s: %q.Event() = %q, want %q", tc.name, tc.level, got, tc.want)
		}
	}
}
