package api

import (
	"net/url"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func TestCheck(t *testing.T) {
	base := Node{At: t0.Add(-200 * time.Millisecond), LoopInterval: 500 * time.Millisecond, TTL: 3 * time.Second, LagSeconds: -1}
	primary := base
	primary.Running, primary.Healthy, primary.WritableUntil = true, true, t0.Add(time.Second)
	fencing := primary
	fencing.WritableUntil = t0.Add(-time.Millisecond)
	demoted := primary
	demoted.WritableUntil = time.Time{}
	replica := base
	replica.Running, replica.Healthy, replica.InRecovery, replica.Streaming, replica.LagBytes, replica.LagSeconds = true, true, true, true, 1<<20, 0.5
	notStreaming := replica
	notStreaming.Streaming = false
	sync := replica
	sync.Sync = true
	noLB := replica
	noLB.NoLoadBalance = true
	stopped := base
	stuck := replica
	stuck.At = t0.Add(-7 * time.Second)

	cases := []struct {
		name  string
		path  string
		query string
		node  Node
		code  int
		role  string
	}{
		{"primary holding its lease", "/primary", "", primary, 200, "primary"},
		{"alias read-write", "/read-write", "", primary, 200, "primary"},
		{"a primary past its fencing deadline is not the primary", "/primary", "", fencing, 503, "demoted"},
		{"a read-write server without the lease is never the primary", "/primary", "", demoted, 503, "demoted"},
		{"a replica is not the primary", "/primary", "", replica, 503, "replica"},
		{"a stopped node", "/primary", "", stopped, 503, "stopped"},
		{"streaming replica", "/replica", "", replica, 200, "replica"},
		{"a replica that does not stream", "/replica", "", notStreaming, 503, "replica"},
		{"the primary is not a replica", "/replica", "", primary, 503, "primary"},
		{"lag within 16MB", "/replica", "lag=16MB", replica, 200, "replica"},
		{"lag over 512kB", "/replica", "lag=512kB", replica, 503, "replica"},
		{"time lag within 1s", "/replica", "lag=1s", replica, 200, "replica"},
		{"time lag over 100ms", "/replica", "lag=100ms", replica, 503, "replica"},
		{"time lag unknown", "/replica", "lag=10s", func() Node { n := replica; n.LagSeconds = -1; return n }(), 503, "replica"},
		{"bad lag", "/replica", "lag=fast", replica, 400, "replica"},
		{"noloadbalance hides a replica", "/replica", "", noLB, 503, "replica"},
		{"noloadbalance does not hide a sync standby from /sync", "/sync", "", func() Node { n := sync; n.NoLoadBalance = true; return n }(), 200, "replica"},
		{"read-only on the primary", "/read-only", "", primary, 200, "primary"},
		{"read-only on a replica", "/read-only", "", replica, 200, "replica"},
		{"read-only on a stopped node", "/read-only", "", stopped, 503, "stopped"},
		{"sync standby", "/sync", "", sync, 200, "replica"},
		{"async standby is not sync", "/sync", "", replica, 503, "replica"},
		{"async standby", "/async", "", replica, 200, "replica"},
		{"sync standby is not async", "/async", "", sync, 503, "replica"},
		{"health of a running node", "/health", "", replica, 200, "replica"},
		{"health of a stopped node", "/health", "", stopped, 503, "stopped"},
		{"readiness of the primary", "/readiness", "", primary, 200, "primary"},
		{"readiness of a standby not streaming", "/readiness", "", notStreaming, 503, "replica"},
		{"liveness", "/liveness", "", replica, 200, "replica"},
		{"liveness of a loop stuck for more than 2 x ttl on a standby", "/liveness", "", stuck, 503, "replica"},
		{"liveness before the first loop", "/liveness", "", Node{TTL: 3 * time.Second}, 503, "stopped"},
	}
	for _, tc := range cases {
		q, _ := url.ParseQuery(tc.query)
		a, found := Check(tc.path, q, tc.node, t0)
		if !found || a.Code != tc.code || a.Role != tc.role {
			t.Errorf("%s: %s?%s = %d %q (%q, found %v), want %d %q", tc.name, tc.path, tc.query, a.Code, a.Role, a.Reason, found, tc.code, tc.role)
		}
	}
	if _, found := Check("/nosuch", nil, primary, t0); found {
		t.Error("/nosuch answered as a health endpoint")
	}
}

func TestParseLag(t *testing.T) {
	for in, want := range map[string]Lag{"16MB": {Bytes: 16 << 20}, "1048576": {Bytes: 1 << 20}, "512kB": {Bytes: 512 << 10},
		"10s": {Duration: 10 * time.Second}, "500ms": {Duration: 500 * time.Millisecond}, "1min": {Duration: time.Minute}} {
		got, err := ParseLag(in)
		if err != nil || got != want {
			t.Errorf("ParseLag(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "16 parsecs", "-5s", "0s"} {
		if got, err := ParseLag(in); err == nil {
			t.Errorf("ParseLag(%q) = %+v, want an error", in, got)
		}
	}
}
