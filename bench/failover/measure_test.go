package failover

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

// fault is what a trial does to the current primary.
type fault int

const (
	hostLoss        fault = iota // kill -9 of the HA agent and PostgreSQL; the node comes back after the trial
	postmasterCrash              // kill -9 of the postmaster only
	switchover                   // a planned switchover through the system's own command
	standbyLoss                  // kill -9 of a standby's agent (and etcd member) and PostgreSQL, the standby whose etcd member leads raft
)

var faults = []fault{hostLoss, postmasterCrash, switchover}

func (f fault) String() string {
	switch f {
	case hostLoss:
		return "host loss"
	case postmasterCrash:
		return "postmaster crash"
	case standbyLoss:
		return "standby loss"
	default:
		return "switchover"
	}
}

// target is one HA system under test: a running three-node cluster.
type target interface {
	// Settle waits until one primary leads and every other node streams
	// from it, and returns the primary's node name.
	Settle(b *testing.B) string
	// DSN is the multi-host connection string of every node with
	// target_session_attrs=read-write: what the probe client uses.
	DSN() string
	// Inject applies the fault to the cluster whose primary is node and
	// returns the node it hit.
	Inject(f fault, node string) (string, error)
	// Restore starts node again after a host loss, so it can rejoin.
	Restore(b *testing.B, node string)
}

type trial struct {
	gap     time.Duration
	missing int
	acked   int
}

// summary is what a series of trials of one fault on one system came to.
type summary struct {
	trials int
	median time.Duration
	max    time.Duration
	lost   int
}

// resumeTimeout bounds the outage a trial waits out; Patroni with its
// defaults needs up to its ttl (30 s) plus a loop on a host loss.
const resumeTimeout = 120 * time.Second

// measure runs n trials of f against t: a probe client writes a row every
// 10 ms through t.DSN() and records every acknowledged write; the fault
// hits the primary; once writes have resumed and kept flowing for 3 s the
// probe stops and every acknowledged write is looked up on the new primary.
// label names the trials in the log.
func measure(b *testing.B, t target, f fault, n int, label string) []trial {
	ctx := context.Background()
	label = loadLabel(label)
	var results []trial
	for i := 0; i < n; i++ {
		leader := t.Settle(b)
		probe, err := testcluster.StartWriteProbe(ctx, t.DSN(), 10*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		ackState := func() string {
			a := probe.Acks()
			if len(a) == 0 {
				return "no acknowledged write yet"
			}
			return fmt.Sprintf("%d acknowledged writes, the last %s ago", len(a), time.Since(a[len(a)-1].Time).Round(time.Millisecond))
		}
		waitUntil(b, "writes flowing", 10*time.Second, func() bool { return len(probe.Acks()) >= 100 }, ackState)
		load := startLoad(b, t.DSN())
		at := time.Now()
		victim, err := t.Inject(f, leader)
		if err != nil {
			probe.Stop()
			b.Fatal(err)
		}
		// Resumed: writes are being acknowledged again more than a second
		// after the fault. (An ack recorded just after `at` for a write the
		// dying primary committed is not a resumption.)
		waitUntil(b, "writes to resume", resumeTimeout, func() bool {
			a := probe.Acks()
			return len(a) > 0 && a[len(a)-1].Time.Sub(at) > time.Second && time.Since(a[len(a)-1].Time) < time.Second
		}, ackState)
		// Keep writing a little after the outage, then check every ack.
		waitUntil(b, "writes after the outage", 10*time.Second, func() bool {
			a := probe.Acks()
			return a[len(a)-1].Time.Sub(at) > 3*time.Second
		}, ackState)
		acks := probe.Stop()
		load.stop(b)
		missing, err := testcluster.MissingAcks(ctx, t.DSN(), acks)
		if err != nil {
			b.Fatal(err)
		}
		r := trial{gap: testcluster.MaxGap(acks, at), missing: len(missing), acked: len(acks)}
		results = append(results, r)
		b.Logf("trial %d: %s of %s: write gap %s, %d of %d acknowledged writes missing", i+1, label, leader, r.gap.Round(time.Millisecond), r.missing, r.acked)
		// Printed too: the testing package truncates long benchmark logs,
		// and a long run is easier to follow as it goes.
		fmt.Printf("TRIAL %s: %d: %s of %s: write gap %s, %d of %d acknowledged writes missing\n", label, i+1, f, leader, r.gap.Round(time.Millisecond), r.missing, r.acked)
		if f == hostLoss || f == standbyLoss {
			t.Restore(b, victim)
		}
	}
	return results
}

func summarize(results []trial) summary {
	gaps := make([]time.Duration, len(results))
	s := summary{trials: len(results)}
	for i, r := range results {
		gaps[i] = r.gap
		s.lost += r.missing
	}
	if len(gaps) == 0 {
		return s
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	s.median = gaps[len(gaps)/2]
	if len(gaps)%2 == 0 {
		s.median = (gaps[len(gaps)/2-1] + gaps[len(gaps)/2]) / 2
	}
	s.max = gaps[len(gaps)-1]
	return s
}

// waitUntil polls cond every 20 ms until it holds, failing after timeout
// with what state() says was last seen.
func waitUntil(b testing.TB, what string, timeout time.Duration, cond func() bool, state func() string) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, what, state())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Markers around the side-by-side table in a report file: a rerun
// replaces what is between them.
const (
	sideBySideBegin = "<!-- bench/failover side-by-side: begin -->"
	sideBySideEnd   = "<!-- bench/failover side-by-side: end -->"
)

// writeSideBySide puts table into file: between the markers if the file
// has them, else appended with the markers (creating the file if needed).
func writeSideBySide(file, table string) error {
	begin, end := sideBySideBegin, sideBySideEnd
	if *pgbenchLoad > 0 {
		// The table under load has its own place beside the quiet one.
		begin = strings.Replace(begin, "side-by-side", "side-by-side under load", 1)
		end = strings.Replace(end, "side-by-side", "side-by-side under load", 1)
	}
	block := begin + "\n" + table + end + "\n"
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + strings.TrimPrefix(s[j+len(end):], "\n")
	} else {
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += block
	}
	return os.WriteFile(file, []byte(s), 0o644)
}
