package failover

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// routeTarget is the pgguard cluster reached one way: the probe writes
// through dsn (HAProxy's read-write port, the agents' built-in proxies, or
// libpq's multi-host string).
type routeTarget struct {
	pgguardTarget
	dsn string
}

func (r routeTarget) DSN() string { return r.dsn }

// BenchmarkRouting measures the host-loss write gap a client sees through
// HAProxy (routing by /primary), through the agents' built-in proxies
// (a libpq host list of their read-write ports, so that the dead host's
// proxy is skipped as it would be behind a VIP), and with the plain libpq
// multi-host string, on one cluster, the routes taking turns trial by
// trial (issue 14: through either router no worse than 1.2 x direct).
//
// Run: go test ./bench/failover -run '^$' -bench '^BenchmarkRouting$' -benchtime 1x -trials 5
func BenchmarkRouting(b *testing.B) {
	c := testcluster.StartShipped(b, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		cfg.Proxy.RWListen = fmt.Sprintf("127.0.0.1:%d", cfg.Postgres.Port+3200)
	}})
	c.Layout.WithHAProxy()
	if _, err := c.Layout.StartHAProxy(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Layout.StopHAProxy(5 * time.Second) })
	var proxyPorts, hosts []string
	for _, p := range c.Layout.PGPorts {
		proxyPorts = append(proxyPorts, fmt.Sprint(p+3200))
		hosts = append(hosts, "127.0.0.1")
	}
	routes := []struct{ label, dsn string }{
		{"libpq multi-host string", c.Layout.DSN()},
		{"HAProxy (/primary checks every 250 ms)", c.Layout.ClientDSN("127.0.0.1", c.Layout.HAProxy[0])},
		{"built-in proxy (libpq list of the proxies)", fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres connect_timeout=2 %s",
			strings.Join(hosts, ","), strings.Join(proxyPorts, ","), c.Layout.ClientParams())},
	}
	results := make([][]trial, len(routes))
	for i := 0; i < *trials; i++ {
		for r, route := range routes {
			results[r] = append(results[r], measure(b, routeTarget{pgguardTarget{c: c}, route.dsn}, hostLoss, 1, route.label)...)
		}
	}
	c.WaitHealthy(120 * time.Second)
	direct := summarize(results[0])
	var table strings.Builder
	fmt.Fprintf(&table, "| route | trials | write gap median | max | vs direct (median) | lost acked writes |\n| --- | --- | --- | --- | --- | --- |\n")
	for r, route := range routes {
		s := summarize(results[r])
		fmt.Fprintf(&table, "| %s | %d | %.2f s | %.2f s | %.2f x | %d |\n", route.label, s.trials, s.median.Seconds(), s.max.Seconds(),
			s.median.Seconds()/direct.median.Seconds(), s.lost)
	}
	fmt.Print("RESULT\n" + table.String())
	if *report != "" {
		f, err := os.OpenFile(*report, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "\n%s, %d trials of each route, taking turns (`make bench-routing`):\n\n%s", time.Now().UTC().Format("2006-01-02 15:04 UTC"), *trials, table.String())
			f.Close()
		}
	}
}
