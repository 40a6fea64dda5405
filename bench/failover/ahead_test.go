package failover

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// BenchmarkSyncHostLossOtherStandbyAhead makes on purpose what the sync
// host loss's recurring outlier (one trial in twenty at about 11.9 s,
// docs/FAILOVER.md) was read to be: when the primary's host dies, the
// standby outside the sync key holds WAL the synchronous one has not
// received. The synchronous standby is promoted (the sync key decides
// in sync mode, not the position), and its timeline forks before the
// other standby's position; the new primary waits for that standby,
// which cannot stream until it is rewound.
//
// Each trial stops the synchronous standby's walreceiver (SIGSTOP),
// writes 48 MB on the primary (its commit waits, unacknowledged, while
// the other standby receives the WAL), waits until the other standby is
// 16 MiB ahead, kills the primary's host and resumes the walreceiver. It
// reports the time from the kill to the first acknowledged write and the
// other standby's steps from the history.
func BenchmarkSyncHostLossOtherStandbyAhead(b *testing.B) {
	c := testcluster.StartShipped(b, testcluster.ClusterOptions{Edit: func(cfg *config.Config) { cfg.HA.ReplicationMode = "sync" }})
	p := pgguardTarget{c: c, sync: true}
	ctx := context.Background()
	var results []trial
	for i := 0; i < *trials; i++ {
		leader := p.Settle(b)
		r, err := c.Status()
		if err != nil {
			b.Fatal(err)
		}
		var key, other string
		for _, m := range r.Members {
			switch {
			case m.Name == leader:
			case m.Sync && key == "":
				key = m.Name
			default:
				other = m.Name
			}
		}
		if key == "" || other == "" {
			b.Fatalf("want a synchronous standby and another one beside primary %s: %+v", leader, r.Members)
		}
		walreceiver := querySingle(b, c.NodeDSN(key), "SELECT pid FROM pg_stat_wal_receiver")
		primary, err := pgx.Connect(ctx, c.NodeDSN(leader))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := primary.Exec(ctx, "CREATE TABLE IF NOT EXISTS bench_ahead (b text); ALTER TABLE bench_ahead ALTER b SET STORAGE EXTERNAL"); err != nil {
			b.Fatal(err)
		}
		probe, err := testcluster.StartWriteProbe(ctx, p.DSN(), 10*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		waitUntil(b, "writes flowing", 10*time.Second, func() bool { return len(probe.Acks()) >= 100 }, func() string { return fmt.Sprintf("%d acknowledged", len(probe.Acks())) })

		if err := syscall.Kill(int(walreceiver), syscall.SIGSTOP); err != nil {
			b.Fatal(err)
		}
		stopped := time.Now()
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(int(walreceiver), syscall.SIGCONT)
			}
		}
		b.Cleanup(resume)
		// Stored outside the row uncompressed (STORAGE EXTERNAL), so 48 MB
		// of WAL at little CPU; its commit never returns: the host dies
		// first.
		go func() {
			_, _ = primary.Exec(ctx, "INSERT INTO bench_ahead SELECT repeat('x', 32000) FROM generate_series(1, 1500)")
		}()
		received := "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::bigint"
		var ahead int64
		// Within wal_sender_timeout (10 s): then the primary drops the
		// stopped walreceiver's connection and names the other standby.
		waitUntil(b, "the other standby 16 MiB ahead of the synchronous one", 8*time.Second, func() bool {
			ahead = querySingle(b, c.NodeDSN(other), received) - querySingle(b, c.NodeDSN(key), received)
			return ahead >= 16<<20
		}, func() string { return fmt.Sprintf("%d bytes ahead", ahead) })

		if r, err := c.Status(); err != nil || len(r.SyncStandbys) != 1 || r.SyncStandbys[0] != key {
			b.Fatalf("the sync key moved off %s within %s of its walreceiver's stop (%v, %v): not the case this bench makes", key, time.Since(stopped).Round(time.Millisecond), r.SyncStandbys, err)
		}
		at := time.Now()
		if err := c.Layout.KillNode(leader); err != nil {
			b.Fatal(err)
		}
		resume()
		var first time.Time
		waitUntil(b, "the first write acknowledged after the kill", resumeTimeout, func() bool {
			for _, a := range probe.Acks() {
				if a.Time.After(at.Add(time.Second)) {
					first = a.Time
					return true
				}
			}
			return false
		}, func() string { return fmt.Sprintf("%d acknowledged, none after the kill", len(probe.Acks())) })
		acks := probe.Stop()
		_ = primary.Close(ctx)
		missing, err := testcluster.MissingAcks(ctx, p.DSN(), acks)
		if err != nil {
			b.Fatal(err)
		}
		results = append(results, trial{gap: first.Sub(at), missing: len(missing), acked: len(acks)})
		fmt.Printf("TRIAL sync host loss, other standby ahead: %d: %s killed, %s (sync key) behind %s by %d MiB: first write %s after the kill, %d of %d acknowledged writes missing; %s\n",
			i+1, leader, key, other, ahead>>20, first.Sub(at).Round(time.Millisecond), len(missing), len(acks), steps(b, c, other, at))
		c.StartNode(leader)
	}
	s := summarize(results)
	b.ReportMetric(s.median.Seconds(), "median-first-write-s")
	b.ReportMetric(s.max.Seconds(), "max-first-write-s")
	b.ReportMetric(float64(s.lost), "lost-acked-writes")
	line := fmt.Sprintf("| host loss in sync mode, the standby outside the sync key 16 MiB ahead (forced) | %d | %.2f s | %.2f s | %d |\n", s.trials, s.median.Seconds(), s.max.Seconds(), s.lost)
	fmt.Print("RESULT " + line)
	if *report != "" {
		if f, err := os.OpenFile(*report, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprint(f, line)
			f.Close()
		}
	}
}

// querySingle returns the one bigint a query of dsn's node yields.
func querySingle(b *testing.B, dsn, sql string) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int64
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
	return v
}

// steps lists node's history entries after at, each with its time after
// at: what the diverged standby did and when.
func steps(b *testing.B, c *testcluster.Cluster, node string, at time.Time) string {
	store, err := c.Layout.OpenStore()
	if err != nil {
		return "history: " + err.Error()
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	events, err := store.History(ctx, at)
	if err != nil {
		return "history: " + err.Error()
	}
	out := node + ":"
	for _, e := range events {
		switch {
		case e.Node != node || e.Action == ha.Wait:
		case e.Action == ha.Stop:
			out += fmt.Sprintf(" %s +%.2fs (%s: %s);", e.Action, e.Time.Sub(at).Seconds(), e.Result, e.Reason)
		default:
			out += fmt.Sprintf(" %s +%.2fs (%s);", e.Action, e.Time.Sub(at).Seconds(), e.Result)
		}
	}
	return out
}
