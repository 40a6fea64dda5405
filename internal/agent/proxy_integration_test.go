package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// The built-in proxy: writes through a standby's read-write port reach
// the primary, carry on across the primary host's loss (sync mode: none
// lost), and its read-only port reaches a standby (issue 14 item 3).
func TestBuiltInProxyAcrossHostLoss(t *testing.T) {
	c := testcluster.StartShipped(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
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
	rw := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=15 %s", port(via)+3200, c.Layout.ClientParams())
	ro := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=15 %s", port(via)+3300, c.Layout.ClientParams())
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
	// The read-only port serves from the primary until the route lists a
	// streaming standby, which may be a moment after the store shows one
	// synchronous.
	testcluster.WaitUntil(t, 30*time.Second, via+"'s read-only port reaching a standby", func() (bool, string) {
		p, rec, err := served(ro)
		return err == nil && rec, fmt.Sprintf("port %d, in recovery %v, %v", p, rec, err)
	})
	writes := c.StartWrites("writes flowing through the proxy", rw, 10*time.Millisecond, 50)
	r, killed := c.KillPrimaryUnderWrites(writes, old, "writes through the proxy on a new primary")
	acks := writes.Stop()
	if p, rec, err := served(rw); err != nil || p != port(r.Leader) || rec {
		t.Fatalf("after the failover the read-write port reached port %d (in recovery %v, %v), want %s on %d", p, rec, err, r.Leader, port(r.Leader))
	}
	c.CheckNoWriteLost("sync mode through the proxy", acks)
	t.Logf("host loss of %s through %s's proxy: %d writes acknowledged, 0 lost, longest write gap %s", old, via, len(acks), testcluster.MaxGap(acks, killed))
}
