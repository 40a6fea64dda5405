// Package api serves an agent's HTTP endpoints: the health checks load
// balancers ask (the paths HAProxy configurations for PostgreSQL clusters
// already use) and the cluster's status. Each health answer is decided by
// Check, a pure function of what the agent last saw and the time of the
// request.
package api

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// Node is what the agent knows of its own node, as of its last loop,
// with the leader lease read when the request arrives.
type Node struct {
	// At is when the agent's loop last finished; LoopInterval and TTL are
	// the configured timings (liveness allows a TTL, two on a standby).
	At           time.Time
	LoopInterval time.Duration
	TTL          time.Duration
	// WritableUntil is when this node's leader lease stops allowing
	// writes (the fencing deadline: last renewal + ttl - safety_margin);
	// zero when it does not hold the leader key.
	WritableUntil time.Time

	Running, Healthy, InRecovery bool
	// Streaming: a standby's WAL receiver streams from its upstream.
	Streaming bool
	// LagBytes is how far the standby's replay is behind the primary's
	// last published position; LagSeconds is the primary's replay_lag for
	// it (-1 when the primary does not report it).
	LagBytes   int64
	LagSeconds float64
	// Sync: the standby is in the cluster's synchronous set.
	Sync          bool
	NoFailover    bool
	NoLoadBalance bool
}

// Role is what Check reports a node as.
func (n Node) Role(now time.Time) string {
	switch {
	case n.primary(now):
		return "primary"
	case n.Running && n.InRecovery:
		return "replica"
	case n.Running && !n.InRecovery:
		return "demoted" // running read-write without the lease: never routed to
	}
	return "stopped"
}

func (n Node) primary(now time.Time) bool {
	return n.Running && n.Healthy && !n.InRecovery && now.Before(n.WritableUntil)
}

func (n Node) replica() bool {
	return n.Running && n.Healthy && n.InRecovery && n.Streaming
}

// Answer is one health check's result: the HTTP status and a body that
// says nothing beyond the role and, on 503, which condition failed.
type Answer struct {
	Code   int    `json:"-"`
	Role   string `json:"role"`
	Reason string `json:"reason,omitempty"`
}

// Paths lists the health endpoints Check knows (aliases included).
var Paths = []string{"/primary", "/read-write", "/leader", "/replica", "/read-only", "/sync", "/synchronous",
	"/async", "/asynchronous", "/health", "/liveness", "/readiness"}

// Check answers one health endpoint for node n at time now. found is false
// for a path that is not a health endpoint.
func Check(path string, q url.Values, n Node, now time.Time) (a Answer, found bool) {
	a = Answer{Code: 200, Role: n.Role(now)}
	fail := func(reason string) (Answer, bool) {
		a.Code, a.Reason = 503, reason
		return a, true
	}
	stale := now.Sub(n.At)
	switch strings.TrimSuffix(path, "/") {
	case "/primary", "/read-write", "/leader":
		if !n.primary(now) {
			return fail("not the primary holding the leader lease")
		}
	case "/replica":
		return replica(a, q, n, fail, false)
	case "/read-only":
		if n.primary(now) {
			return a, true
		}
		return replica(a, q, n, fail, false)
	case "/sync", "/synchronous":
		if !n.Sync {
			return fail("not a synchronous standby")
		}
		return replica(a, q, n, fail, true)
	case "/async", "/asynchronous":
		if n.Sync {
			return fail("a synchronous standby")
		}
		return replica(a, q, n, fail, false)
	case "/health":
		if !n.Running || !n.Healthy {
			return fail("PostgreSQL is not running and healthy")
		}
	case "/readiness":
		if !n.primary(now) && !n.replica() {
			return fail("neither the primary nor a streaming standby")
		}
	case "/liveness":
		limit := n.TTL
		if a.Role != "primary" {
			limit = 2 * n.TTL
		}
		if limit < 2*n.LoopInterval {
			limit = 2 * n.LoopInterval
		}
		if n.At.IsZero() || stale > limit {
			return fail("the agent's loop has not run for longer than " + limit.String())
		}
	default:
		return Answer{}, false
	}
	return a, true
}

// replica answers for a standby that serves reads: streaming, not tagged
// noloadbalance (unless asked for a sync standby, which a tag does not
// hide), within ?lag= when given.
func replica(a Answer, q url.Values, n Node, fail func(string) (Answer, bool), sync bool) (Answer, bool) {
	if !n.replica() {
		return fail("not a streaming standby")
	}
	if n.NoLoadBalance && !sync {
		return fail("tagged no_load_balance")
	}
	if s := q.Get("lag"); s != "" {
		limit, err := ParseLag(s)
		if err != nil {
			a.Code, a.Reason = 400, err.Error()
			return a, true
		}
		if over, why := limit.exceeded(n); over {
			return fail(why)
		}
	}
	return a, true
}

// Lag is a ?lag= limit: bytes or a duration.
type Lag struct {
	Bytes    int64
	Duration time.Duration
}

func (l Lag) exceeded(n Node) (bool, string) {
	if l.Duration > 0 {
		if n.LagSeconds < 0 {
			return true, "replay lag unknown"
		}
		if time.Duration(n.LagSeconds*float64(time.Second)) > l.Duration {
			return true, "replay lag over the limit"
		}
		return false, ""
	}
	if n.LagBytes > l.Bytes {
		return true, "replay lag over the limit"
	}
	return false, ""
}

// ParseLag reads "16MB", "1048576", "512kB" (PostgreSQL's units, powers of
// 1024) or "10s", "500ms", "1min".
func ParseLag(s string) (Lag, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(num):])
	if num == "" {
		return Lag{}, fmt.Errorf("lag %q: want bytes (16MB, 512kB, 1048576) or a time (10s, 500ms, 1min)", s)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return Lag{}, fmt.Errorf("lag %q: %w", s, err)
	}
	bytes := map[string]int64{"": 1, "B": 1, "kB": 1 << 10, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	if m, ok := bytes[unit]; ok {
		return Lag{Bytes: v * m}, nil
	}
	times := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour}
	if m, ok := times[unit]; ok && v > 0 {
		return Lag{Duration: time.Duration(v) * m}, nil
	}
	return Lag{}, fmt.Errorf("lag %q: unit %q: use B, kB, MB, GB, TB or ms, s, min, h", s, unit)
}

// NodeFrom builds the node's view from one observation (positions from
// the cluster's view: the primary's published position and its
// pg_stat_replication row for this node).
func NodeFrom(o ha.Observation, at time.Time, writableUntil time.Time, noLoadBalance bool) Node {
	l := o.Local
	n := Node{At: at, LoopInterval: o.Settings.LoopInterval, TTL: o.Settings.TTL, WritableUntil: writableUntil,
		Running: l.Running, Healthy: l.Healthy, InRecovery: l.InRecovery, Streaming: l.Streaming,
		LagSeconds: -1, NoFailover: o.Settings.NoFailover, NoLoadBalance: noLoadBalance}
	c := o.Cluster
	if c.Sync != nil && c.Config.Synchronous() {
		n.Sync = slices.Contains(c.Sync.Standbys(), o.Self)
	}
	head := c.Optime
	if c.Leader != nil {
		if lm, ok := c.Members[c.Leader.Name]; ok {
			if lm.WalLSN > head {
				head = lm.WalLSN
			}
			if r, ok := lm.Replication[o.Self]; ok {
				n.LagSeconds = r.ReplayLagSeconds
			}
		}
	}
	if pos := l.ReplayedLSN; n.InRecovery && head > pos {
		n.LagBytes = int64(head - pos)
	}
	return n
}
