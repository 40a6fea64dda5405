package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// apiGet asks node's agent for path and returns the HTTP status (0 when
// the agent does not answer).
func apiGet(c *testcluster.Cluster, node, path string) (int, []byte) {
	for i, n := range c.Layout.Nodes {
		if n != node {
			continue
		}
		client := http.Client{Timeout: time.Second}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", c.Layout.API[i], path))
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var body [8192]byte
		n, _ := resp.Body.Read(body[:])
		return resp.StatusCode, body[:n]
	}
	return 0, nil
}

// The health endpoints on a real cluster, and Debian's HAProxy routing by
// them: writes through its read-write port carry on across the loss of
// the primary's host (sync mode: none of them lost), and its read-only
// port reaches a standby that has the writes.
func TestHAProxyRoutesByHealthEndpointsAcrossHostLoss(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatal("haproxy is not installed: run make setup (apt-get install -y haproxy)")
	}
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{Edit: syncMode("sync", 10*time.Second)})
	r := c.WaitFor("a synchronous standby", 30*time.Second, hasSync)
	old := r.Leader

	// Every agent answers for itself: the leader alone is /primary.
	expect := func(node, path string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var got int
		var body []byte
		for time.Now().Before(deadline) {
			if got, body = apiGet(c, node, path); got == want {
				return
			}
			time.Sleep(100 * time.Millisecond) // polling the endpoint
		}
		t.Fatalf("%s%s answered %d (%s), want %d", node, path, got, body, want)
	}
	for _, n := range c.Layout.Nodes {
		if n == old {
			expect(n, "/primary", 200)
			expect(n, "/replica", 503)
			expect(n, "/read-only", 200)
		} else {
			expect(n, "/primary", 503)
			expect(n, "/replica", 200)
			expect(n, "/replica?lag=16MB", 200)
			expect(n, "/read-only", 200)
		}
		expect(n, "/health", 200)
		expect(n, "/liveness", 200)
		expect(n, "/readiness", 200)
		expect(n, "/nosuch", 404)
		expect(n, "/replica?lag=fast", map[bool]int{true: 503, false: 400}[n == old])
	}
	// /sync and /async split the standbys as the sync key does (ctl
	// status's "sync"); the key may widen and narrow meanwhile, so the
	// two reads are retried until they agree.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := c.Status()
		agree := true
		var seen []string
		for _, n := range others(c.Layout.Nodes, old) {
			want := member(r, n).Sync
			syncCode, _ := apiGet(c, n, "/sync")
			asyncCode, _ := apiGet(c, n, "/async")
			seen = append(seen, fmt.Sprintf("%s sync=%v /sync %d /async %d", n, want, syncCode, asyncCode))
			if (syncCode == 200) != want || (asyncCode == 200) == want {
				agree = false
			}
		}
		if agree {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/sync and /async disagree with the sync key: %v", seen)
		}
		time.Sleep(200 * time.Millisecond) // polling until the key and the endpoints agree
	}
	// The cluster's status is the operator API's, behind a token.
	if code, body := apiGet(c, old, "/api/v1/cluster"); code != 401 {
		t.Fatalf("GET /api/v1/cluster without a token answered %d, want 401:\n%s", code, body)
	}

	c.Layout.WithHAProxy()
	began := time.Now()
	pid, err := c.Layout.StartHAProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Layout.StopHAProxy(5 * time.Second) })
	t.Logf("haproxy pid %d: rw %d, ro %d; routing by its checks %s after its start", pid, c.Layout.HAProxy[0], c.Layout.HAProxy[1], time.Since(began).Round(time.Millisecond))
	rw := c.Layout.ClientDSN("127.0.0.1", c.Layout.HAProxy[0])
	ro := c.Layout.ClientDSN("127.0.0.1", c.Layout.HAProxy[1])
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// inRecovery asks whichever server HAProxy's port leads to.
	served := func(dsn string) (port int, inRecovery bool, err error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, false, err
		}
		defer conn.Close(ctx)
		err = conn.QueryRow(ctx, `SELECT inet_server_port(), pg_is_in_recovery()`).Scan(&port, &inRecovery)
		return port, inRecovery, err
	}
	pgPort := func(node string) int {
		for i, n := range c.Layout.Nodes {
			if n == node {
				return c.Layout.PGPorts[i]
			}
		}
		return 0
	}
	waitServed := func(what, dsn string, ok func(port int, inRecovery bool) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			port, rec, err := served(dsn)
			if err == nil && ok(port, rec) {
				return
			}
			last = fmt.Sprintf("port %d, in recovery %v, err %v", port, rec, err)
			time.Sleep(100 * time.Millisecond) // polling HAProxy's routing
		}
		t.Fatalf("%s: last seen %s", what, last)
	}
	// StartHAProxy returns once HAProxy routes by its checks, not by its
	// start-up assumption that every server is up: from then on, every
	// connection (round robin, so each server's turn comes) reaches the
	// right kind of server at once.
	for i := 0; i < 2*len(c.Layout.Nodes); i++ {
		if p, rec, err := served(rw); err != nil || p != pgPort(old) || rec {
			t.Fatalf("connection %d through haproxy's rw port just after its start: port %d, in recovery %v, err %v; want the primary %s (port %d)", i+1, p, rec, err, old, pgPort(old))
		}
		if p, rec, err := served(ro); err != nil || p == pgPort(old) || !rec {
			t.Fatalf("connection %d through haproxy's ro port just after its start: port %d, in recovery %v, err %v; want a standby", i+1, p, rec, err)
		}
	}

	writes := c.StartWrites("writes flowing through haproxy", rw, 10*time.Millisecond, 50)
	r, killed := c.KillPrimaryUnderWrites(writes, old, "writes through haproxy on a new primary")
	acks := writes.Stop()
	waitServed("haproxy's rw port reaches the new primary "+r.Leader, rw, func(p int, rec bool) bool { return p == pgPort(r.Leader) && !rec })
	c.CheckNoWriteLost("sync mode through haproxy", acks)
	// The read-only port leads to the remaining standby once it streams
	// from the new primary, and it has the last acknowledged write.
	last := acks[len(acks)-1].ID
	deadline = time.Now().Add(60 * time.Second)
	var seen string
	for {
		conn, err := pgx.Connect(ctx, ro)
		if err == nil {
			var rec, has bool
			err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pgguard_probe WHERE id = $1)`, last).Scan(&rec, &has)
			conn.Close(ctx)
			if err == nil && rec && has {
				break
			}
			seen = fmt.Sprintf("in recovery %v, has write %d: %v (err %v)", rec, last, has, err)
		} else {
			seen = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's ro port never reached a standby with the last acknowledged write: %s", seen)
		}
		time.Sleep(200 * time.Millisecond) // polling the standby's replay
	}
	t.Logf("host loss of %s through haproxy: %d writes acknowledged, 0 lost, longest write gap %s", old, len(acks), testcluster.MaxGap(acks, killed))
}
