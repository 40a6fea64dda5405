package failover

import (
	"flag"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

var withPatroni = flag.Bool("patroni", false, "run BenchmarkPatroniSideBySide (needs the Debian packages patroni and etcd-server; run as root)")

// A system of the side-by-side comparison and how to start it.
type system struct {
	name  string
	start func(b *testing.B) target
}

var systems = []system{
	// pgguard as `pgguard demo up` ships it: WAL archived into a backup
	// repository, the default jobs installed.
	{"pgguard defaults", func(b *testing.B) target {
		return pgguardTarget{c: testcluster.StartShipped(b, testcluster.ClusterOptions{})}
	}},
	{patroniDefaults.Name, func(b *testing.B) target { return startPatroni(b, patroniDefaults) }},
	{patroniAggressive.Name, func(b *testing.B) target { return startPatroni(b, patroniAggressive) }},
}

func startPatroni(b *testing.B, s patroniSettings) target {
	t := patroniTarget{c: startPatroniCluster(b, s)}
	t.c.initArchive(t.Settle(b))
	t.c.checkSettings()
	return t
}

// How each system's faults are injected, for the table.
var faultLabels = map[fault]string{
	hostLoss:        "host loss (kill -9 of the HA agent, the postmaster and each of its children; restarted after the trial)",
	postmasterCrash: "postmaster crash (kill -9 of the postmaster only)",
	switchover:      "switchover (`pgguard ctl switchover --yes` / `patronictl switchover --leader <primary> --force`)",
}

// BenchmarkPatroniSideBySide measures pgguard with its defaults, Patroni
// with its defaults and Patroni with the most aggressive timing its
// documentation allows, one after the other in the same run, with the same
// PostgreSQL, probe client and faults: -trials trials of each fault per
// system, each system on its own fresh three-node cluster. With -report it
// writes one table of fault × system into the report file (between the
// side-by-side markers if the file has them, else appended).
//
// Run: go test ./bench/failover -run '^$' -bench '^BenchmarkPatroniSideBySide$' -benchtime 1x -trials 5 -patroni
func BenchmarkPatroniSideBySide(b *testing.B) {
	if !*withPatroni {
		b.Skip("the Patroni comparison runs only with -patroni (make bench-patroni)")
	}
	checkPatroniInstalled(b)
	results := map[string]map[fault]summary{}
	failed := map[string]bool{}
	for _, sys := range systems {
		results[sys.name] = map[fault]summary{}
		ok := b.Run(strings.ReplaceAll(sys.name, " ", "-"), func(b *testing.B) {
			t := sys.start(b)
			for _, f := range faults {
				s := summarize(measure(b, t, f, *trials, sys.name+": "+f.String()))
				results[sys.name][f] = s
				metric := strings.ReplaceAll(f.String(), " ", "-")
				b.ReportMetric(s.median.Seconds(), metric+"-median-gap-s")
				b.ReportMetric(s.max.Seconds(), metric+"-max-gap-s")
				b.ReportMetric(float64(s.lost), metric+"-lost-acked-writes")
				fmt.Printf("RESULT | %s | %s | %d | %.2f s | %.2f s | %d |\n", f, sys.name, s.trials, s.median.Seconds(), s.max.Seconds(), s.lost)
			}
			t.Settle(b)
		})
		if !ok {
			failed[sys.name] = true
		}
	}
	var table strings.Builder
	table.WriteString("| fault | system | trials | median write gap | max write gap | lost acknowledged writes |\n")
	table.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, f := range faults {
		for _, sys := range systems {
			s, ok := results[sys.name][f]
			switch {
			case ok:
				fmt.Fprintf(&table, "| %s | %s | %d | %.2f s | %.2f s | %d |\n", faultLabels[f], sys.name, s.trials, s.median.Seconds(), s.max.Seconds(), s.lost)
			case failed[sys.name]:
				fmt.Fprintf(&table, "| %s | %s | failed (see the benchmark log) | | | |\n", faultLabels[f], sys.name)
			}
		}
	}
	under := ""
	if *pgbenchLoad > 0 {
		under = fmt.Sprintf("; pgbench -c %d against the primary throughout every trial, restarted at once after each failover", *pgbenchLoad)
	}
	fmt.Fprintf(&table, "\nBoth systems archive WAL: pgguard as `pgguard demo up` ships it (the agent's WAL stream into the repository, "+
		"`pgguard-wal` as archive_command and restore_command, the default jobs), Patroni with %s (`archive-push` and `archive-get` "+
		"in archive_command and restore_command, its defaults but zstd level 3, one repository for the three nodes).\n",
		versionOf(pgbackrestBin, "version"))
	fmt.Fprintf(&table, "\n%s; %s; PostgreSQL %s; %d trials per fault and system%s; pgguard at commit %s; run %s.\n",
		versionOf(patroniBin, "--version"), versionOf(etcdBin, "--version"), versionOf(testcluster.PGBinDir+"/postgres", "--version"),
		*trials, under, versionOf("git", "rev-parse", "--short=12", "HEAD"), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Print(table.String())
	if *report != "" {
		if err := writeSideBySide(*report, table.String()); err != nil {
			b.Errorf("write %s: %v", *report, err)
		}
	}
}

// versionOf is the first line a program prints for its version flag.
func versionOf(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return bin + " (version unknown)"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
