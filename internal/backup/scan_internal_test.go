package backup

import "testing"

func TestPreferPageScan(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		name        string
		start, prev uint64
		data        int64
		wantScan    bool
	}{
		{"light load: 50 MiB of WAL on 1.5 GiB uses the WAL block map", gib + 50<<20, gib, 3 * gib / 2, false},
		{"heavy load: 1 GiB of WAL on 1.5 GiB scans page LSNs", 2 * gib, gib, 3 * gib / 2, true},
		{"exactly a quarter still uses the WAL map", gib + gib/4, gib, gib, false},
		{"small database: 48 MiB of WAL (mostly switch padding) on 100 MiB uses the WAL map", gib + 48<<20, gib, 100 << 20, false},
		{"start before the previous (other timeline) leaves it to source", gib, 2 * gib, gib, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := preferPageScan(c.start, c.prev, c.data); (got != "") != c.wantScan {
				t.Errorf("preferPageScan = %q, want scan %v", got, c.wantScan)
			}
		})
	}
}
