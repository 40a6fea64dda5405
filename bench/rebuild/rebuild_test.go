// Package rebuild measures, on one pgbench database, how long a standby
// takes to be rebuilt from a base backup of the primary (`ctl reinit`)
// against a restore of the newest backup (`ctl reinit --from-backup`), and
// how long a drill of that backup takes (issue 5).
//
// Run: go test ./bench/rebuild -run '^$' -bench . -benchtime 1x -timeout 60m -scale 100
package rebuild

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

var (
	scale       = flag.Int("scale", 100, "pgbench scale of the database")
	trials      = flag.Int("trials", 2, "rebuilds of each kind")
	loadSeconds = flag.Int("load-seconds", 30, "pgbench -c 4 load between the backup and the rebuilds")
	report      = flag.String("report", "", "append the Markdown table to this file")
)

func BenchmarkRebuildAndDrill(b *testing.B) {
	c := testcluster.StartCluster(b, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 2}))
	leader := c.Leader()
	victim := ""
	for _, n := range c.Layout.Nodes {
		if n != leader {
			victim = n
		}
	}
	dsn := c.NodeDSN(leader)
	cfg := c.Layout.ConfigPath(leader)
	ctl := func(args ...string) time.Duration {
		began := time.Now()
		full := append([]string{"ctl", "-c", filepath.Join(c.Layout.Dir, "ctl.yaml")}, args...)
		if out, err := exec.Command(c.Exe, full...).CombinedOutput(); err != nil {
			b.Fatalf("pgguard %s: %v\n%s", strings.Join(full, " "), err, out)
		}
		return time.Since(began)
	}
	run := func(name string, args ...string) (string, time.Duration) {
		began := time.Now()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out), time.Since(began)
	}
	pgbench := filepath.Join(testcluster.PGBinDir, "pgbench")

	_, initTook := run(pgbench, "-i", "-s", fmt.Sprint(*scale), "-q", dsn)
	size := strings.TrimSpace(psql(b, dsn, "SELECT pg_database_size(current_database())"))
	b.Logf("pgbench -i -s %d: %s bytes in %s", *scale, size, initTook.Round(time.Second))
	c.WaitFor(victim+" caught up", 10*time.Minute, func(r status.Report) bool {
		for _, m := range r.Members {
			if m.Name == victim && m.Streaming && m.LagBytes == 0 {
				return true
			}
		}
		return false
	})
	_, backupTook := run(c.Exe, "backup", "full", "-c", cfg, "-o", "json", "--channels", "2")
	// Writes after the backup: the rebuilt standby must catch up on them.
	run(pgbench, "-c", "4", "-T", fmt.Sprint(*loadSeconds), dsn)

	var base, fromBackup []time.Duration
	for i := 0; i < *trials; i++ {
		base = append(base, ctl("reinit", victim, "--yes"))
		fromBackup = append(fromBackup, ctl("reinit", victim, "--from-backup", "--yes"))
		b.Logf("trial %d: base backup %s, from backup %s", i+1, base[i].Round(time.Millisecond), fromBackup[i].Round(time.Millisecond))
	}

	out, err := exec.Command(c.Exe, "drill", "-c", cfg, "-o", "json", "--channels", "2",
		"--check", "SELECT count(*) FROM pgbench_branches="+fmt.Sprint(*scale)).Output()
	if err != nil {
		b.Fatalf("drill: %v\n%s", err, out)
	}
	var drill struct {
		Passed         bool    `json:"passed"`
		RestoreSeconds float64 `json:"restore_seconds"`
		OpenSeconds    float64 `json:"open_seconds"`
		CheckSeconds   float64 `json:"check_seconds"`
		TotalSeconds   float64 `json:"total_seconds"`
	}
	if err := json.Unmarshal(out, &drill); err != nil {
		b.Fatalf("drill output: %v\n%s", err, out)
	}
	if !drill.Passed {
		b.Fatalf("drill of a good backup failed:\n%s", out)
	}

	mb, mf := median(base), median(fromBackup)
	b.ReportMetric(mb.Seconds(), "reinit-base-s")
	b.ReportMetric(mf.Seconds(), "reinit-from-backup-s")
	b.ReportMetric(drill.TotalSeconds, "drill-s")
	table := fmt.Sprintf(`
### Run of %s: pgbench scale %d (%s bytes), %d trials, %d CPUs

| step | median | all trials | notes |
| --- | --- | --- | --- |
| full backup (2 channels) | %s | | before the %d s pgbench -c 4 load the rebuilds catch up on |
| `+"`ctl reinit %s`"+` (pg_basebackup of the primary) | %s | %s | until streaming again |
| `+"`ctl reinit %s --from-backup`"+` (restore + archive + streaming) | %s | %s | until streaming again |
| drill (restore, open, amcheck, 1 SQL check) | %.1f s | | restore %.1f s, open %.1f s, checks %.1f s |
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), *scale, size, *trials, runtime.NumCPU(),
		backupTook.Round(100*time.Millisecond), *loadSeconds,
		victim, mb.Round(100*time.Millisecond), list(base),
		victim, mf.Round(100*time.Millisecond), list(fromBackup),
		drill.TotalSeconds, drill.RestoreSeconds, drill.OpenSeconds, drill.CheckSeconds)
	fmt.Print(table)
	if *report != "" {
		f, err := os.OpenFile(*report, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fmt.Fprint(f, table)
	}
}

func psql(b *testing.B, dsn, query string) string {
	out, err := exec.Command(filepath.Join(testcluster.PGBinDir, "psql"), "-XAtc", query, dsn).CombinedOutput()
	if err != nil {
		b.Fatalf("psql %s: %v\n%s", query, err, out)
	}
	return string(out)
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func list(d []time.Duration) string {
	var parts []string
	for _, x := range d {
		parts = append(parts, x.Round(100*time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}
