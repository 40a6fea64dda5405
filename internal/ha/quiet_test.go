package ha

import "testing"

func TestQuiet(t *testing.T) {
	base := Cluster{SystemID: "1", Leader: &Leader{Name: "n1", Revision: 7}, Revision: 40}
	with := func(edit func(c *Cluster)) Cluster {
		c := base
		l := *base.Leader
		c.Leader = &l
		edit(&c)
		return c
	}
	cases := []struct {
		name       string
		prev, cur  Cluster
		leaderLost bool
		want       bool
	}{
		{"same leader, no request, newer revision: quiet", base, with(func(c *Cluster) { c.Revision = 45 }), false, true},
		{"same revision (nothing written): quiet", base, base, false, true},
		{"leader key gone: read again linearizably before deciding", base, with(func(c *Cluster) { c.Leader = nil }), false, false},
		{"leader key rewritten (new revision): not quiet", base, with(func(c *Cluster) { c.Leader.Revision = 9 }), false, false},
		{"another leader: not quiet", base, with(func(c *Cluster) { c.Leader.Name = "n2" }), false, false},
		{"switchover requested: not quiet", base, with(func(c *Cluster) { c.Switchover = &Switchover{} }), false, false},
		{"takeover requested: not quiet", base, with(func(c *Cluster) { c.Takeover = &Takeover{} }), false, false},
		{"cluster restore requested: not quiet", base, with(func(c *Cluster) { c.Restore = &ClusterRestore{} }), false, false},
		{"reinit requested: not quiet", base, with(func(c *Cluster) { c.Reinit = map[string]bool{"n2": true} }), false, false},
		{"replay request standing: not quiet", base, with(func(c *Cluster) { c.Replay = map[string]ReplayRequest{"n2": {}} }), false, false},
		{"during an election: never quiet", base, base, true, false},
		{"local member behind the last view: not quiet", base, with(func(c *Cluster) { c.Revision = 30 }), false, false},
		{"no earlier view (first loop): not quiet", Cluster{}, base, false, false},
		{"not bootstrapped: not quiet", with(func(c *Cluster) { c.SystemID = "" }), with(func(c *Cluster) { c.SystemID = "" }), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Quiet(tc.prev, tc.cur, tc.leaderLost); got != tc.want {
				t.Fatalf("Quiet = %v, want %v", got, tc.want)
			}
		})
	}
}
