// Package walstream_test measures archive_command under load with the
// agent's WAL stream (issue 16): every archive_command call's latency and
// pgbench's tps, against archive_command = true on the same cluster,
// rounds interleaved. Run with `make bench-walstream` (add
// -args -load-seconds 20 for a shorter run).
package walstream_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/testcluster"
)

var (
	scale       = flag.Int("scale", 20, "pgbench scale factor")
	loadSeconds = flag.Int("load-seconds", 60, "duration of each pgbench round")
	rounds      = flag.Int("rounds", 2, "rounds of each setting, interleaved")
	report      = flag.String("report", "", "add the Markdown row to the table of this file (before its "+rowsEnd+" line)")
)

func BenchmarkArchiveCommandWithStream(b *testing.B) {
	for range b.N {
		run(b)
	}
}

func run(b *testing.B) {
	c := testcluster.StartCluster(b, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1}))
	node := c.Layout.Nodes[0]
	dsn := c.NodeDSN(node)
	pgbench := func(args ...string) string {
		cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "pgbench"), append(args, dsn)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	pgbench("-i", "-q", "-s", strconv.Itoa(*scale))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)

	// push.sh times each call of the archive_command the agent set (with
	// pgguard-wal, archive_command's fast path, as users run it).
	var shipped string
	if err := conn.QueryRow(ctx, `SHOW archive_command`).Scan(&shipped); err != nil || !strings.Contains(shipped, "%p") {
		b.Fatalf("archive_command %q (%v): want the agent's", shipped, err)
	}
	b.Logf("archive_command as shipped: %s", shipped)
	logPath := filepath.Join(c.Layout.Dir, "push-latency.log")
	push := filepath.Join(c.Layout.Dir, "push.sh")
	script := fmt.Sprintf("#!/bin/sh\ns=$(date +%%s%%N)\n%s\nrc=$?\necho $(( ($(date +%%s%%N) - s) / 1000 )) >> %s\nexit $rc\n",
		strings.ReplaceAll(shipped, "%p", `"$1"`), logPath)
	if err := os.WriteFile(push, []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := testcluster.Account(b).ChownTree(c.Layout.Dir); err != nil {
		b.Fatal(err)
	}
	setArchive := func(cmd string) {
		if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER SYSTEM SET archive_command = '%s'`, cmd)); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			b.Fatal(err)
		}
	}
	tpsRe := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	tps := map[string][]float64{}
	var lat []float64 // microseconds, every call of the stream rounds
	load := strconv.Itoa(*loadSeconds)
	for r := 0; r < *rounds; r++ {
		for _, setting := range []string{"true", "stream"} {
			if setting == "true" {
				setArchive("true")
			} else {
				os.Remove(logPath)
				setArchive(push + " %p")
			}
			stop := make(chan struct{})
			if setting == "stream" {
				// A light load fills no segment in a short round: switch
				// segments every second meanwhile, so that calls happen.
				go func() {
					sc, err := pgx.Connect(ctx, dsn)
					if err != nil {
						return
					}
					defer sc.Close(context.Background())
					t := time.NewTicker(time.Second)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							_, _ = sc.Exec(ctx, `SELECT pg_switch_wal()`)
						}
					}
				}()
			}
			out := pgbench("-n", "-c", "8", "-j", "2", "-T", load)
			close(stop)
			m := tpsRe.FindStringSubmatch(out)
			if m == nil {
				b.Fatalf("no tps in pgbench's output:\n%s", out)
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			tps[setting] = append(tps[setting], v)
			if setting == "stream" {
				data, _ := os.ReadFile(logPath)
				for _, f := range strings.Fields(string(data)) {
					if us, err := strconv.ParseFloat(f, 64); err == nil {
						lat = append(lat, us)
					}
				}
			}
			b.Logf("round %d, archive_command %s: %.0f tps", r+1, setting, v)
		}
	}
	setArchive("")
	if _, err := conn.Exec(ctx, `ALTER SYSTEM RESET archive_command`); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))] / 1000
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	cost := 100 * (1 - mean(tps["stream"])/mean(tps["true"]))
	res := fmt.Sprintf("| %s | pgbench -s %d, -c 8 -j 2 -T %d, %d rounds each, interleaved | %d calls: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms | %.0f tps (archive_command = true: %.0f tps), cost %.1f %% | %s |\n",
		time.Now().UTC().Format("2006-01-02 15:04"), *scale, *loadSeconds, *rounds, len(lat), pct(0.50), pct(0.95), pct(0.99), pct(1), mean(tps["stream"]), mean(tps["true"]), cost, strings.Join(strings.Fields(string(load1))[:3], " "))
	b.Logf("%s", res)
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(cost, "tps-cost-%")
	if *report != "" {
		if err := addRow(*report, res); err != nil {
			b.Fatal(err)
		}
	}
}

// rowsEnd marks the end of the results table in the report file. The file
// holds other benches' runs after that table, so a row appended to the
// file's end would land outside it (it did on 2026-12-06).
const rowsEnd = "<!-- bench/walstream rows: end -->"

// addRow inserts row just before the rowsEnd line of file, or fails
// naming the line to add when the file has none (and changes nothing).
func addRow(file, row string) error {
	old, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(old)
	i := strings.Index(s, rowsEnd)
	if i < 0 || strings.Count(s, rowsEnd) > 1 {
		return fmt.Errorf("%s: want exactly one %q line right after the last row of the archive_command table, to add this run's row before it; add it, or run without -report", file, rowsEnd)
	}
	if !strings.HasSuffix(row, "\n") {
		row += "\n"
	}
	return os.WriteFile(file, []byte(s[:i]+row+s[i:]), 0o644)
}
