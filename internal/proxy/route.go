// Package proxy is the agent's built-in PostgreSQL router, for sites
// without HAProxy (the seed's pgpool): a read-write port spliced to the
// primary that holds the leader lease, a read-only port balanced over the
// streaming standbys within a lag limit. Where each connection goes is
// decided by Route, a pure function of the agent's last view; the server
// closes every connection whose backend stops being the route's at once,
// and holds new ones (bounded) while there is no primary.
package proxy

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// Route is where connections go as of one observation.
type Route struct {
	// Primary is the lease holder's PostgreSQL address ("" when there is
	// none, or the view is too old to tell).
	Primary string
	// Replicas are the streaming standbys within the lag limit, each
	// listed as many times as its weight, in a stable order; when none
	// qualifies, the primary serves reads.
	Replicas []string
	// ValidUntil is when this route expires unless a newer view replaces
	// it: a proxy that stops hearing from the store must stop sending
	// writes before the primary it names can have lost its lease.
	ValidUntil time.Time
	// Blind: this node does not see the store, so it cannot know the
	// primary; new connections are closed at once (a client's next host,
	// another node's proxy, may see it) instead of waiting here.
	Blind bool
}

// RouteFrom computes the route from an observation made at o.Now.
// writableUntil is this node's own lease deadline when it leads; maxLag
// bounds a read-only standby's replay lag in bytes (0: no limit); weights
// are the read-only weights by member (default 1; 0 keeps a member out).
func RouteFrom(o ha.Observation, writableUntil time.Time, maxLag int64, weights map[string]int) Route {
	r := Route{ValidUntil: o.Now.Add(o.Settings.TTL - o.Settings.SafetyMargin)}
	c := o.Cluster
	if !o.StoreOK {
		r.Blind = true
		return r
	}
	if c.Leader == nil {
		return r
	}
	lm, ok := c.Members[c.Leader.Name]
	if !ok || lm.Role != ha.RolePrimary || !lm.Healthy {
		return r
	}
	if c.Leader.Name == o.Self {
		// Our own lease: no further than the fencing deadline.
		if !writableUntil.After(o.Now) {
			return r
		}
		r.ValidUntil = writableUntil
	}
	r.Primary = addr(lm)
	head := max(c.Optime, lm.WalLSN)
	names := c.MemberNames()
	for _, n := range names {
		m := c.Members[n]
		if n == c.Leader.Name || m.Role != ha.RoleStandby || !m.Healthy || !m.Streaming || m.Following != c.Leader.Name || m.Isolated {
			continue
		}
		if pos := m.ReplayedLSN; maxLag > 0 && head > pos && int64(head-pos) > maxLag {
			continue
		}
		w, set := weights[n]
		if !set {
			w = 1
		}
		for range w {
			r.Replicas = append(r.Replicas, addr(m))
		}
	}
	return r
}

func addr(m ha.Member) string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// String is the route for logs.
func (r Route) String() string {
	p := r.Primary
	if p == "" {
		p = "(none)"
	}
	return fmt.Sprintf("rw → %s, ro → %v", p, r.Replicas)
}
