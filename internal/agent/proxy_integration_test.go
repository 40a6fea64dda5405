package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// The built-in proxy: writes through a standby's read-write port reach
// the primary, carry on across the primary host's loss (sync mode: none
// lost), and its read-only port reaches a standby (issue 14 item 3).
func TestBuiltInProxyAcrossHostLoss(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		syncMode("sync", 10*time.Second)(cfg)
		cfg.Proxy.RWListen = fmt.Sprintf("127.0.0.1:%d", cfg.Postgres.Port+3200)
		cfg.Proxy.ROListen = fmt.Sprintf("127.0.0.1:%d", cfg.Postgres.Port+3300)
	}})
	r := c.WaitFor("a synchronous standby", 30*time.Second, hasSync)
	old := r.Leader
	via := others(c.Layout.Nodes, old)[0]
	port := func(node string) int {
		for i, n := range c.Layout.Nodes {
			if n == node {
				return c.Layout.PGPorts[i]
			}
		}
		return 0
	}
	rw := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=15", port(via)+3200)
	ro := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=15", port(via)+3300)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	served := func(dsn string) (int, bool, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, false, err
		}
		defer conn.Close(ctx)
		var p int
		var rec bool
		err = conn.QueryRow(ctx, `SELECT inet_server_port(), pg_is_in_recovery()`).Scan(&p, &rec)
		return p, rec, err
	}
	if p, rec, err := served(rw); err != nil || p != port(old) || rec {
		t.Fatalf("%s's read-write port reached port %d (in recovery %v, %v), want the primary %s on %d", via, p, rec, err, old, port(old))
	}
	if p, rec, err := served(ro); err != nil || !rec {
		t.Fatalf("%s's read-only port reached port %d (in recovery %v, %v), want a standby", via, p, rec, err)
	}
	writes, err := testcluster.StartWriteProbe(ctx, rw, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor("writes flowing through the proxy", 10*time.Second, func(status.Report) bool { return len(writes.Acks()) > 50 })
	killed := time.Now()
	c.KillNode(old)
	r = c.WaitFor("writes through the proxy on a new primary", 30*time.Second, func(r status.Report) bool {
		a := writes.Acks()
		return r.Leader != "" && r.Leader != old && len(a) > 0 && a[len(a)-1].Time.After(killed.Add(time.Second))
	})
	acks := writes.Stop()
	if p, rec, err := served(rw); err != nil || p != port(r.Leader) || rec {
		t.Fatalf("after the failover the read-write port reached port %d (in recovery %v, %v), want %s on %d", p, rec, err, r.Leader, port(r.Leader))
	}
	missing, err := testcluster.MissingAcks(ctx, c.Layout.DSN(), acks)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("sync mode through the proxy lost %d of %d acknowledged writes: %v", len(missing), len(acks), missing)
	}
	t.Logf("host loss of %s through %s's proxy: %d writes acknowledged, 0 lost, longest write gap %s", old, via, len(acks), testcluster.MaxGap(acks, killed))
}
