package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func TestRouteFrom(t *testing.T) {
	set := ha.Settings{TTL: 3 * time.Second, SafetyMargin: time.Second}
	member := func(name string, role ha.Role, streaming bool, replayed lsn.LSN) ha.Member {
		return ha.Member{Name: name, Host: "10.0.0." + name[1:], Port: 5432, Role: role, Healthy: true, Streaming: streaming,
			Following: "n1", WalLSN: map[bool]lsn.LSN{true: 0x5000000}[role == ha.RolePrimary], ReplayedLSN: replayed}
	}
	c := ha.Cluster{Leader: &ha.Leader{Name: "n1"}, Optime: 0x5000000, Members: map[string]ha.Member{
		"n1": member("n1", ha.RolePrimary, false, 0),
		"n2": member("n2", ha.RoleStandby, true, 0x5000000),
		"n3": member("n3", ha.RoleStandby, true, 0x3000000), // 32 MiB behind
		"n4": member("n4", ha.RoleStandby, false, 0x5000000),
	}}
	o := ha.Observation{Now: t0, Self: "n2", Settings: set, StoreOK: true, Cluster: c}
	r := RouteFrom(o, time.Time{}, 16<<20, nil)
	if r.Primary != "10.0.0.1:5432" || strings.Join(r.Replicas, ",") != "10.0.0.2:5432" || !r.ValidUntil.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("route %+v: want rw to n1, ro to n2 only (n3 lags, n4 does not stream), valid 2 s", r)
	}
	if r := RouteFrom(o, time.Time{}, 0, map[string]int{"n2": 2, "n3": 0}); strings.Join(r.Replicas, ",") != "10.0.0.2:5432,10.0.0.2:5432" {
		t.Fatalf("weights: replicas %v, want n2 twice and n3 never", r.Replicas)
	}
	// On the leader itself the route lasts no longer than its lease.
	self := o
	self.Self = "n1"
	if r := RouteFrom(self, t0.Add(500*time.Millisecond), 0, nil); r.Primary == "" || !r.ValidUntil.Equal(t0.Add(500*time.Millisecond)) {
		t.Fatalf("leader's own route %+v: want itself until its fencing deadline", r)
	}
	if r := RouteFrom(self, t0.Add(-time.Millisecond), 0, nil); r.Primary != "" {
		t.Fatalf("leader past its fencing deadline still routes writes to itself: %+v", r)
	}
	noLeader := o
	noLeader.Cluster.Leader = nil
	if r := RouteFrom(noLeader, time.Time{}, 0, nil); r.Primary != "" {
		t.Fatalf("no leader, route %+v", r)
	}
	blind := o
	blind.StoreOK = false
	if r := RouteFrom(blind, time.Time{}, 0, nil); r.Primary != "" || !r.Blind {
		t.Fatalf("store unreadable, route %+v: want no primary, blind", r)
	}
	if r := RouteFrom(noLeader, time.Time{}, 0, nil); r.Blind {
		t.Fatalf("no leader but the store readable (a failover under way): route %+v must not be blind", r)
	}
}

// backend is a TCP server that greets each connection with its name.
func backend(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.WriteString(c, name+"\n")
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func greet(t *testing.T, addr string) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return "", nil
	}
	return strings.TrimSpace(line), c
}

// Connections follow the route; a connection to a primary the route no
// longer names is closed at once; a new connection waits for a primary.
func TestServerFollowsTheRoute(t *testing.T) {
	a, b, s1 := backend(t, "a"), backend(t, "b"), backend(t, "s1")
	srv, err := Listen("127.0.0.1:0", "127.0.0.1:0", 3*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rw, ro := srv.Addrs()[0], srv.Addrs()[1]
	valid := time.Now().Add(time.Hour)
	srv.Update(Route{Primary: a.Addr().String(), Replicas: []string{s1.Addr().String()}, ValidUntil: valid})
	if got, c := greet(t, rw); got != "a" {
		t.Fatalf("rw reached %q, want a", got)
	} else {
		defer c.Close()
		// The primary moves: the old connection is closed at once.
		srv.Update(Route{Primary: b.Addr().String(), Replicas: []string{s1.Addr().String()}, ValidUntil: valid})
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Fatalf("connection to the former primary still open after the route moved: %v", err)
		}
	}
	if got, _ := greet(t, rw); got != "b" {
		t.Fatalf("rw reached %q after the move, want b", got)
	}
	if got, _ := greet(t, ro); got != "s1" {
		t.Fatalf("ro reached %q, want s1", got)
	}
	// No primary: a new connection waits, and goes through once one is
	// known.
	srv.Update(Route{ValidUntil: valid})
	got := make(chan string, 1)
	go func() { g, _ := greet(t, rw); got <- g }()
	for deadline := time.Now().Add(3 * time.Second); srv.Waiting() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the new connection never waited for a primary")
		}
		time.Sleep(10 * time.Millisecond) // polling the proxy's count of waiting connections
	}
	srv.Update(Route{Primary: a.Addr().String(), ValidUntil: valid})
	if g := <-got; g != "a" {
		t.Fatalf("a waiting connection reached %q, want a", g)
	}
	// An expired route sends no writes.
	srv.Update(Route{Primary: a.Addr().String(), ValidUntil: time.Now().Add(-time.Second)})
	short, err := Listen("127.0.0.1:0", "", 200*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	short.Update(Route{Primary: a.Addr().String(), ValidUntil: time.Now().Add(-time.Second)})
	if g, _ := greet(t, short.Addrs()[0]); g != "" {
		t.Fatalf("an expired route still reached %q", g)
	}
}

// A read-only connection the primary took while no standby qualified
// stays with the primary when a standby comes back (CI: the agent test's
// first read through the read-only port was cut mid-query by the route
// change that listed the standbys), and is closed once that server stops
// being the primary.
func TestReadOnlyConnectionOnThePrimarySurvivesAStandbyComingBack(t *testing.T) {
	a, b, s1 := backend(t, "a"), backend(t, "b"), backend(t, "s1")
	srv, err := Listen("", "127.0.0.1:0", 3*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ro := srv.Addrs()[0]
	valid := time.Now().Add(time.Hour)
	srv.Update(Route{Primary: a.Addr().String(), ValidUntil: valid})
	got, c := greet(t, ro)
	if got != "a" {
		t.Fatalf("ro with no standby reached %q, want the primary a", got)
	}
	defer c.Close()
	srv.Update(Route{Primary: a.Addr().String(), Replicas: []string{s1.Addr().String()}, ValidUntil: valid})
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the read-only connection on the primary was closed when a standby came back: %v", err)
	}
	if g, _ := greet(t, ro); g != "s1" {
		t.Fatalf("a new read-only connection reached %q, want the standby s1", g)
	}
	srv.Update(Route{Primary: b.Addr().String(), Replicas: []string{s1.Addr().String()}, ValidUntil: valid})
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the read-only connection on the former primary still open after the route moved: %v", err)
	}
}

// A node that cannot see the store closes new connections at once, where
// a node that sees no primary (a failover under way) holds them: a client
// with several hosts moves on to another node's proxy at once instead of
// waiting out its connect timeout here (chaos: a writer kept reconnecting
// to an isolated node's proxy for the whole isolation).
func TestBlindProxyClosesNewConnectionsAtOnce(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", "", time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Update(Route{ValidUntil: time.Now().Add(time.Hour), Blind: true})
	c, err := net.DialTimeout("tcp", srv.Addrs()[0], time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Closed well before the one-minute wait: EOF, not a timeout.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a blind proxy's new connection: read %v, want EOF at once", err)
	}
	if srv.Waiting() != 0 {
		t.Fatalf("%d connections wait on a blind proxy", srv.Waiting())
	}
}
