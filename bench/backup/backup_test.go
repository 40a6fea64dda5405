// Package backup compares pgguard's physical backups with pg_basebackup and
// pgBackRest on one pgbench database, in one run, at matching compression
// (zstd level 3) and parallelism: full backup time and stored size,
// incremental backups after a light and a heavy load, restore time, and
// whether `pgguard wal-push` as archive_command keeps up under load. A
// second part adds a table of random bytes (-random-mib, barely
// compressible) to the same database and repeats full, incremental,
// restore and WAL push on it. Every timed step also reports its
// throughput as a ratio to the cold read rate of the data directory and
// the peak memory of the tool's process tree (run_test.go).
//
// It starts its own PostgreSQL 15 (with a Unix socket, which pgBackRest
// needs) as the unprivileged account, and needs pgbackrest and GNU time
// installed (apt-get install -y pgbackrest time). It is a benchmark, not a test: run it by
// hand, e.g.
//
//	go test ./bench/backup -run '^$' -bench . -benchtime 1x -timeout 90m \
//	    -scale 100 -load-seconds 60 -channels 2 -report docs/BACKUP-BENCHMARKS.md
package backup

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/testcluster"
)

var (
	scale       = flag.Int("scale", 100, "pgbench scale factor")
	loadSeconds = flag.Int("load-seconds", 60, "duration of each pgbench load")
	channels    = flag.Int("channels", 2, "pgguard --channels and pgBackRest process-max")
	report      = flag.String("report", "", "append the Markdown results to this file")
	keep        = flag.Bool("keep", false, "keep the run directory (repositories, data directory) and log where it is")
	randomMiB   = flag.Int("random-mib", 1024, "size of the table of random bytes of the second, less compressible part (0 skips that part)")
	dropCaches  = flag.Bool("drop-caches", true, "drop the page cache before the raw read and before each timed backup and restore (needs root)")
)

type bench struct {
	b       *testing.B
	acct    osuser.Account
	dir     string
	sock    string
	port    int
	data    string
	pgguard string
	cfg     string
	pgbrCfg string
	pg      *exec.Cmd
	rows    [][]string
	cmds    []string
	// beside says, for each timed step, what else the machine did while
	// it ran (besideSummary).
	beside []string
	// lastCPU is the user+system CPU time of the last command run and of
	// the children it waited for: unlike wall time, it does not depend on
	// what else the machine was doing.
	lastCPU    time.Duration
	lastStderr string
	// lastRSS and lastTree are the peak resident set of the last timed
	// command: of its largest process (GNU time's ru_maxrss) and of its
	// process tree, sampled (see rss_test.go).
	lastRSS, lastTree int64
	// pgdataSize and rawRate are the data directory's size (without
	// pg_wal) and its cold read rate in bytes per second, measured by
	// rawRead before the full backups of each part.
	pgdataSize int64
	rawRate    float64
	cacheNote  string
	copies     int // restored copies started, for their log names
}

func BenchmarkBackupVsPgBackRest(b *testing.B) {
	for range b.N {
		runBench(b)
	}
}

func runBench(b *testing.B) {
	bn := setup(b)
	defer bn.stopPG()
	bn.pgbench("-i", "-s", strconv.Itoa(*scale), "-q")
	bn.sql("CHECKPOINT")
	dbSize := bn.sql("SELECT pg_database_size('postgres')")
	bn.row("database", "pgbench scale "+strconv.Itoa(*scale), "", "", "", dbSize+" bytes", "", "")
	bn.waitArchived()
	bn.rawRead("")
	bn.fullBackups("")

	// Incrementals after a light and a heavy load.
	secsArg := strconv.Itoa(*loadSeconds)
	for _, load := range []struct {
		name string
		args []string
	}{
		{"light (-c 4 --rate 50)", []string{"-c", "4", "-T", secsArg, "--rate", "50"}},
		{"heavy (-c 4, unthrottled)", []string{"-c", "4", "-T", secsArg}},
	} {
		tx := bn.pgbench(load.args...)
		bn.incrBackups("incr after "+load.name, tx)
	}
	bn.restores("")
	bn.walKeepUp("", []string{"-c", "8", "-T", secsArg})

	if *randomMiB > 0 {
		bn.randomPart(secsArg)
	}
	bn.write()
}

// randomPart adds a table of random bytes, which compresses about 1:1, to
// the same database and repeats the backups, a restore and the WAL push
// on it.
func (bn *bench) randomPart(secsArg string) {
	rows := *randomMiB * 1024 // 1 KiB of random bytes a row: not TOASTed, 7 rows a page
	start := time.Now()
	for _, q := range []string{
		"CREATE EXTENSION IF NOT EXISTS pgcrypto",
		"CREATE TABLE random_data (id int PRIMARY KEY, payload bytea NOT NULL)",
		fmt.Sprintf("INSERT INTO random_data SELECT g, gen_random_bytes(1024) FROM generate_series(1, %d) g", rows),
		// Hint bits and the visibility map set now, not by the first
		// scan after the full backup (with data checksums that dirties
		// every page, and the incremental would be a full).
		"VACUUM (FREEZE, ANALYZE) random_data",
		"CHECKPOINT",
	} {
		bn.cmds = append(bn.cmds, q)
		bn.sql(q)
	}
	tbl := bn.sql("SELECT pg_total_relation_size('random_data')")
	dbSize := bn.sql("SELECT pg_database_size('postgres')")
	bn.b.Logf("random_data loaded in %s", time.Since(start).Round(time.Second))
	bn.row("random: database", fmt.Sprintf("pgbench scale %d + random_data (%d rows of 1 KiB from gen_random_bytes)", *scale, rows), "", "", "",
		dbSize+" bytes (random_data with its index "+tbl+" bytes)", "", "")
	bn.waitArchived()
	bn.rawRead("random: ")
	bn.fullBackups("random: ")

	// A tenth of the rows rewritten with new random bytes: the first
	// tenth of the table's pages change and as many new pages are added.
	update := fmt.Sprintf("UPDATE random_data SET payload = gen_random_bytes(1024) WHERE id <= %d", rows/10)
	bn.cmds = append(bn.cmds, update)
	start = time.Now()
	bn.sql(update)
	took := time.Since(start)
	bn.waitArchived()
	bn.incrBackups("random: incr after rewriting 10 % of random_data", fmt.Sprintf("%d rows updated in %s", rows/10, took.Round(100*time.Millisecond)))
	bn.restores("random: ")

	script := filepath.Join(bn.dir, "random-update.sql")
	os.WriteFile(script, fmt.Appendf(nil, "\\set id random(1, %d)\nUPDATE random_data SET payload = gen_random_bytes(1024) WHERE id = :id;\n", rows), 0o644)
	bn.acct.ChownTree(script)
	bn.walKeepUp("random: ", []string{"-c", "8", "-T", secsArg, "-f", script})
}

// fullBackups takes a full backup with each tool.
func (bn *bench) fullBackups(prefix string) {
	b := bn.b
	bn.cold()
	d, out := bn.timed("pgguard full", bn.pgguard, "backup", "full", "-c", bn.cfg, "--channels", strconv.Itoa(*channels), "-o", "json")
	g := parseGuard(b, out)
	bn.row(prefix+"full", "pgguard", bn.wallCPU(d), bn.throughput(bn.pgdataSize, d), bn.rss(), mib(g.StoredSize), mib(g.BytesRead), bn.phases())
	bbDir := filepath.Join(bn.dir, "basebackup")
	os.RemoveAll(bbDir)
	bn.cold()
	d, _ = bn.timed("pg_basebackup", filepath.Join(testcluster.PGBinDir, "pg_basebackup"), "-h", bn.sock, "-p", strconv.Itoa(bn.port),
		"-U", "postgres", "-D", bbDir, "-Ft", "--compress=server-zstd:3", "-X", "none", "-c", "fast", "--no-manifest")
	bn.row(prefix+"full", "pg_basebackup (1 process)", bn.wallCPU(d), bn.throughput(bn.pgdataSize, d), bn.rss()+" (client; the server's walsender does the work)", mib(dirSize(bbDir)), "", "")
	os.RemoveAll(bbDir)
	before := dirSize(filepath.Join(bn.dir, "pgbr"))
	bn.sql("CHECKPOINT")
	bn.cold()
	d, _ = bn.timed("pgbackrest full", "pgbackrest", "--config="+bn.pgbrCfg, "--stanza=bench", "--type=full", "backup")
	bn.row(prefix+"full", "pgBackRest", bn.wallCPU(d), bn.throughput(bn.pgdataSize, d), bn.rss(), mib(dirSize(filepath.Join(bn.dir, "pgbr"))-before), "", "")
}

// incrBackups takes an incremental backup with pgguard and pgBackRest.
func (bn *bench) incrBackups(step, load string) {
	b := bn.b
	// The load's dirty buffers written out first (untimed), before each
	// tool: each backup's start asks for an immediate checkpoint, and
	// only the first tool's would have had the load's to write (2.9 s
	// of pgguard's 9.3 s after the heavy load on 2026-12-05, with
	// pgBackRest's right after it).
	bn.sql("CHECKPOINT")
	bn.cold()
	d, out := bn.timed("pgguard incr", bn.pgguard, "backup", "incr", "-c", bn.cfg, "--channels", strconv.Itoa(*channels), "-o", "json")
	g := parseGuard(b, out)
	bn.row(step, "pgguard", bn.wallCPU(d), bn.throughput(bn.pgdataSize, d), bn.rss(), mib(g.StoredSize), mib(g.BytesRead), load+"; "+bn.phases())
	before := dirSize(filepath.Join(bn.dir, "pgbr"))
	bn.sql("CHECKPOINT")
	bn.cold()
	d, _ = bn.timed("pgbackrest incr", "pgbackrest", "--config="+bn.pgbrCfg, "--stanza=bench", "--type=incr", "backup")
	bn.row(step, "pgBackRest (file level)", bn.wallCPU(d), bn.throughput(bn.pgdataSize, d), bn.rss(), mib(dirSize(filepath.Join(bn.dir, "pgbr"))-before), "", load)
}

// fingerprint is what a copy must show of the source as the newest backup
// holds it (nothing writes between that backup and the restores): the
// pgbench rows and their balances, and with the random part its rows and a
// digest of the first thousand.
func (bn *bench) fingerprint(query func(string) string, random bool) string {
	q := "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history)"
	if random {
		q += " || ' ' || (SELECT count(*) FROM random_data) || ' ' || (SELECT md5(string_agg(md5(payload), '' ORDER BY id)) FROM random_data WHERE id <= 1000)"
	}
	return query(q)
}

// cold drops the page cache (after writing back dirty pages), so that a
// timed step reads its input from disk as the raw read did.
func (bn *bench) cold() {
	if !*dropCaches {
		return
	}
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		bn.b.Fatalf("drop the page cache (run as root, or -drop-caches=false): %v", err)
	}
}

// rawRead measures how fast this machine reads the data directory: the
// page cache dropped, every regular file outside pg_wal read once in
// order, one file at a time, with 1 MiB reads.
func (bn *bench) rawRead(prefix string) {
	bn.cold()
	var total int64
	buf := make([]byte, 1<<20)
	start := time.Now()
	filepath.Walk(bn.data, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if fi.IsDir() && p == filepath.Join(bn.data, "pg_wal") {
			return filepath.SkipDir
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		for {
			n, err := f.Read(buf)
			total += int64(n)
			if err != nil {
				break
			}
		}
		return nil
	})
	d := time.Since(start)
	bn.pgdataSize, bn.rawRate = total, float64(total)/d.Seconds()
	how := "page cache dropped first"
	if !*dropCaches {
		how = "page cache NOT dropped (-drop-caches=false)"
	}
	bn.row(prefix+"raw read of PGDATA (without pg_wal)", "Go, 1 MiB reads, one file at a time", secs(d), fmt.Sprintf("%.0f MB/s, 1 × raw", bn.rawRate/1e6), "",
		fmt.Sprintf("%.1f MiB", float64(total)/(1<<20)), "", how)
}

// throughput is n bytes in d as MB/s and as a ratio to the raw read rate.
func (bn *bench) throughput(n int64, d time.Duration) string {
	rate := float64(n) / d.Seconds()
	if bn.rawRate == 0 {
		return fmt.Sprintf("%.0f MB/s", rate/1e6)
	}
	return fmt.Sprintf("%.0f MB/s, %.2f × raw", rate/1e6, rate/bn.rawRate)
}

// rss is the last timed command's peak RSS: of its process tree, and of
// its largest process when that differs.
func (bn *bench) rss() string {
	// The tree holds the largest process: a sampled sum below that one's
	// peak missed it.
	one := float64(bn.lastRSS) / (1 << 20)
	tree := max(float64(bn.lastTree)/(1<<20), one)
	if tree-one < 1 {
		return fmt.Sprintf("%.0f MiB", tree)
	}
	return fmt.Sprintf("%.0f MiB (largest process %.0f MiB)", tree, one)
}

// waitArchived waits until the archiver has no .ready segment left, so
// that a timed step does not share the machine with the WAL push of the
// load before it.
func (bn *bench) waitArchived() {
	statusDir := filepath.Join(bn.data, "pg_wal", "archive_status")
	start := time.Now()
	for countReady(statusDir) > 0 && time.Since(start) < 20*time.Minute {
		time.Sleep(500 * time.Millisecond) // polling interval
	}
	if waited := time.Since(start); waited >= 100*time.Millisecond {
		bn.b.Logf("archive caught up after %s", waited.Round(100*time.Millisecond))
	}
}

// walKeepUp runs pgbench with args (-c 8) and samples the .ready backlog
// every second; push.sh logs every archive_command call's duration and
// peak memory.
func (bn *bench) walKeepUp(prefix string, args []string) {
	statusDir := filepath.Join(bn.data, "pg_wal", "archive_status")
	lat := filepath.Join(bn.dir, "push-latency.log")
	os.Remove(lat)
	bn.waitArchived()
	start := time.Now()
	done := make(chan string, 1)
	go func() { done <- bn.pgbench(args...) }()
	var backlog []int
	var tx string
	for tx == "" {
		select {
		case tx = <-done:
		case <-time.After(time.Second):
			backlog = append(backlog, countReady(statusDir))
		}
	}
	load := time.Since(start)
	drainStart := time.Now()
	for countReady(statusDir) > 0 && time.Since(drainStart) < 10*time.Minute {
		time.Sleep(200 * time.Millisecond) // sampling interval
	}
	drain := time.Since(drainStart)
	ms, rssKiB := readLatencies(lat)
	slices.Sort(ms)
	pct := func(p float64) string {
		if len(ms) == 0 {
			return "-"
		}
		return strconv.Itoa(ms[int(p*float64(len(ms)-1))]) + " ms"
	}
	maxB, lastB := 0, 0
	for _, n := range backlog {
		maxB = max(maxB, n)
	}
	if len(backlog) > 0 {
		lastB = backlog[len(backlog)-1]
	}
	half := backlog[len(backlog)/2:]
	maxHalf := 0
	for _, n := range half {
		maxHalf = max(maxHalf, n)
	}
	wal := bn.sql("SELECT count(*) FROM pg_ls_waldir()")
	bn.row(prefix+"wal-push under pgbench "+strings.Join(shorten(bn.dir, args), " "), "pgguard",
		fmt.Sprintf("%d calls in %s; latency p50 %s, p95 %s, max %s", len(ms), load.Round(time.Second), pct(0.5), pct(0.95), pct(1)),
		"", fmt.Sprintf("%.0f MiB (largest call)", float64(rssKiB)/1024),
		fmt.Sprintf(".ready backlog max %d, max in 2nd half %d, at end %d; drained %s after load", maxB, maxHalf, lastB, drain.Round(100*time.Millisecond)),
		"", tx+"; "+wal+" segments in pg_wal at the end")
	bn.b.Logf("backlog samples: %v", backlog)
}

func countReady(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ready") {
			n++
		}
	}
	return n
}

// readLatencies reads push.sh's log: per call, milliseconds and the max
// RSS in KiB. It returns the latencies and the largest RSS.
func readLatencies(path string) ([]int, int) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	var out []int
	maxRSS := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if n, err := strconv.Atoi(fields[0]); err == nil {
			out = append(out, n)
		}
		if len(fields) > 1 {
			if k, err := strconv.Atoi(fields[1]); err == nil {
				maxRSS = max(maxRSS, k)
			}
		}
	}
	return out, maxRSS
}

// phases reads pgguard's JSON progress events (stderr is not a terminal)
// and says where a backup's wall time went.
func (bn *bench) phases() string {
	var ckpt, read, stop float64
	for _, line := range strings.Split(bn.lastStderr, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		switch ev["event"] {
		case "backup-started":
			ckpt, _ = ev["checkpoint_seconds"].(float64)
		case "files-read":
			read, _ = ev["seconds"].(float64)
		case "backup-stopped":
			stop, _ = ev["seconds"].(float64)
		}
	}
	return fmt.Sprintf("checkpoint %.1f s, read %.1f s, stop + WAL archived %.1f s", ckpt, read, stop)
}

type guardReport struct {
	StoredSize int64 `json:"stored_size"`
	BytesRead  int64 `json:"bytes_read"`
}

func parseGuard(b *testing.B, out string) guardReport {
	var g guardReport
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		b.Fatalf("pgguard printed %q: %v", out, err)
	}
	return g
}

func setup(b *testing.B) *bench {
	acct, err := osuser.Resolve("")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		b.Fatalf("pgbackrest is not installed: apt-get install -y pgbackrest")
	}
	dir, err := os.MkdirTemp("", "pgguard-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if *keep {
			b.Logf("run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	os.Chmod(dir, 0o755)
	bn := &bench{b: b, acct: acct, dir: dir, sock: filepath.Join(dir, "sock"), data: filepath.Join(dir, "data"), pgguard: testcluster.Binary(b)}
	os.Mkdir(bn.sock, 0o700)
	bn.port = testcluster.FreePort(b)
	key := make([]byte, 64)
	rand.Read(key)
	os.WriteFile(filepath.Join(dir, "repo.key"), key, 0o600)
	bn.cfg = filepath.Join(dir, "node.yaml")
	os.WriteFile(bn.cfg, []byte(testcluster.RepoConfig("bench", bn.data, bn.port, "file://"+dir+"/repo", dir+"/repo.key")), 0o600)
	push := filepath.Join(dir, "push.sh")
	// GNU time (Debian package time), when installed, writes the call's
	// max RSS (KiB) to a file beside it.
	os.WriteFile(push, fmt.Appendf(nil, "#!/bin/sh\ns=$(date +%%s%%N)\nr=$(mktemp)\nt=\nif [ -x /usr/bin/time ]; then t=\"/usr/bin/time -f %%M -o $r\"; fi\n$t %s wal-push -c %s --channels 4 \"$1\"\nrc=$?\necho $(( ($(date +%%s%%N) - s) / 1000000 )) $(cat \"$r\") >> %s/push-latency.log\nrm -f \"$r\"\nexit $rc\n",
		bn.pgguard, bn.cfg, dir), 0o755)
	bn.pgbrCfg = filepath.Join(dir, "pgbackrest.conf")
	os.WriteFile(bn.pgbrCfg, fmt.Appendf(nil, `[global]
repo1-path=%[1]s/pgbr
log-path=%[1]s/pgbr-log
lock-path=%[1]s/pgbr-lock
spool-path=%[1]s/pgbr-spool
process-max=%[2]d
compress-type=zst
compress-level=3
start-fast=y
archive-check=n
log-level-console=warn
log-level-file=off

[bench]
pg1-path=%[3]s
pg1-port=%[4]d
pg1-socket-path=%[5]s
pg1-user=postgres
`, dir, *channels, bn.data, bn.port, bn.sock), 0o600)
	if err := acct.ChownTree(dir); err != nil {
		b.Fatal(err)
	}
	bn.run(filepath.Join(testcluster.PGBinDir, "initdb"), "-D", bn.data, "-U", "postgres", "--auth=trust", "--data-checksums", "--no-sync")
	f, _ := os.OpenFile(filepath.Join(bn.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nshared_buffers = '512MB'\nmax_wal_size = '8GB'\ncheckpoint_timeout = '30min'\nwal_keep_size = '4GB'\narchive_mode = on\narchive_command = '%s %%p'\nmax_connections = 50\n",
		bn.port, bn.sock, push)
	f.Close()
	bn.startPG()
	bn.cmds = append(bn.cmds,
		"pgguard repo init -c node.yaml   # zstd level 3, AES-256-GCM, 128 KiB blocks",
		"pgbackrest --stanza=bench stanza-create   # process-max="+strconv.Itoa(*channels)+", compress-type=zst, compress-level=3, start-fast=y",
		"archive_command = 'push.sh %p'   # times: pgguard wal-push -c node.yaml --channels 4 %p")
	bn.run(bn.pgguard, "repo", "init", "-c", bn.cfg)
	bn.run("pgbackrest", "--config="+bn.pgbrCfg, "--stanza=bench", "stanza-create")
	return bn
}

func (bn *bench) startPG() {
	cmd := exec.Command(filepath.Join(testcluster.PGBinDir, "postgres"), "-D", bn.data)
	bn.acct.Apply(cmd)
	logf, _ := os.Create(filepath.Join(bn.dir, "postgres.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		bn.b.Fatal(err)
	}
	bn.pg = cmd
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if exec.Command(filepath.Join(testcluster.PGBinDir, "pg_isready"), "-h", bn.sock, "-p", strconv.Itoa(bn.port)).Run() == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	bn.b.Fatalf("postgres did not start; see %s", filepath.Join(bn.dir, "postgres.log"))
}

func (bn *bench) stopPG() {
	if bn.pg == nil {
		return
	}
	bn.pg.Process.Signal(syscall.SIGINT)
	bn.pg.Wait()
}

func (bn *bench) timed(what, name string, args ...string) (time.Duration, string) {
	bn.b.Helper()
	bn.cmds = append(bn.cmds, filepath.Base(name)+" "+strings.Join(shorten(bn.dir, args), " "))
	// The source's archiver catches up first. After a load it works
	// through a backlog of segments, a pgguard wal-push each (a process
	// and a repository open): 3.7 s of CPU beside the first restore
	// after the loads (the warm one, pgguard's) in the run of 2026-12-06
	// 18:37 in BACKUP-BENCHMARKS.md, and nothing beside the restores
	// after it.
	bn.waitArchived()
	before := snapMachine()
	start := time.Now()
	out := bn.exec(true, name, args...)
	d := time.Since(start)
	beside := besideSummary(before, snapMachine(), d, os.Getpid(), processTitle)
	bn.beside = append(bn.beside, what+": "+beside)
	bn.b.Logf("%s: %s; %s", what, d.Round(10*time.Millisecond), beside)
	return d, out
}

func shorten(dir string, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, dir+"/", "")
	}
	return out
}

// pgbench runs pgbench and returns its "tps" and transaction count summary.
func (bn *bench) pgbench(args ...string) string {
	bn.b.Helper()
	bn.cmds = append(bn.cmds, "pgbench "+strings.Join(shorten(bn.dir, args), " "))
	full := append([]string{"-h", bn.sock, "-p", strconv.Itoa(bn.port), "-U", "postgres"}, args...)
	out := bn.run(filepath.Join(testcluster.PGBinDir, "pgbench"), append(full, "postgres")...)
	var txs, tps string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "number of transactions actually processed:") {
			txs = strings.TrimSpace(strings.TrimPrefix(l, "number of transactions actually processed:"))
		}
		if strings.HasPrefix(l, "tps = ") {
			tps = strings.Fields(l)[2]
		}
	}
	if txs == "" {
		return ""
	}
	return txs + " tx, " + tps + " tps"
}

func (bn *bench) sql(q string) string {
	return strings.TrimSpace(bn.run(filepath.Join(testcluster.PGBinDir, "psql"), "-h", bn.sock, "-p", strconv.Itoa(bn.port), "-U", "postgres", "-XAtc", q, "postgres"))
}

func (bn *bench) row(cols ...string) {
	bn.rows = append(bn.rows, cols)
	bn.b.Logf("%s", strings.Join(cols, " | "))
}

func (bn *bench) write() {
	var w strings.Builder
	fmt.Fprintf(&w, "\n## Run of %s: pgbench scale %d, loads of %d s, %d channels/processes\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), *scale, *loadSeconds, *channels)
	load1, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&w, "Machine load average at the end (other work on the machine inflates wall times, not CPU times): %s\n\n", strings.TrimSpace(string(load1)))
	w.WriteString("| step | tool | wall time (CPU time) | throughput, as a ratio to the raw read | peak RSS of the process tree | stored | read from PGDATA | load; where the time went |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range bn.rows {
		w.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	w.WriteString("\nCommands, in order (paths relative to the run directory):\n\n```\n")
	for _, c := range bn.cmds {
		w.WriteString(c + "\n")
	}
	w.WriteString("```\n")
	w.WriteString("\nWhat else the machine did during each timed step (other processes' CPU with the children they reaped, the whole disks' counters, the dirty pages at the step's start):\n\n")
	for _, l := range bn.beside {
		w.WriteString("- " + l + "\n")
	}
	bn.b.Log(w.String())
	if *report != "" {
		f, err := os.OpenFile(*report, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			bn.b.Fatal(err)
		}
		defer f.Close()
		f.WriteString(w.String())
	}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// wallCPU shows wall time and the CPU time of the command just run.
func (bn *bench) wallCPU(d time.Duration) string {
	return fmt.Sprintf("%.1f s (CPU %.1f s)", d.Seconds(), bn.lastCPU.Seconds())
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
