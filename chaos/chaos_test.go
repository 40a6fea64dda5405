package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/demo"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

var (
	trials       = flag.Int("trials", 1, "trials per fault and mode")
	seed         = flag.Int64("seed", 1, "seed of the fault schedules (trial i of a cell uses seed+i)")
	faultList    = flag.String("faults", "all", "comma-separated faults to run: "+faultNames())
	modeList     = flag.String("modes", "async,sync", "comma-separated replication modes")
	workDir      = flag.String("workdir", "/tmp/pgguard-chaos", "clusters, client records and logs (a passing run keeps its logs and records, a failing one everything)")
	resultsPath  = flag.String("results", "", "append one JSON line per trial here (default WORKDIR/results.jsonl)")
	reportPath   = flag.String("report", "", "write the Markdown table of every result in the results file here")
	healthBound  = flag.Duration("health-bound", 120*time.Second, "how long after a fault's schedule the cluster may take to return to full health")
	withVIP      = flag.Bool("vip", false, "run the cluster with a virtual IP and check, every 100 ms of every trial, that at most one node holds it; one more writer writes through it")
	reportCmd    = flag.String("report-command", "make chaos TRIALS=20 SEED=1", "the command the report names to reproduce it")
	regenCmd     = flag.String("regenerate-command", "make chaos-report", "the command the report names to rewrite it from the results")
	withProxy    = flag.Bool("proxy", false, "run every agent's built-in proxy; one more writer writes through it (any node's), and no write it delivers may land on a node that is no longer the lease holder")
	shipped      = flag.Bool("shipped", true, "run the cluster as `pgguard demo up` ships it: WAL archived into a backup repository, the demo's default jobs installed (-shipped=false: the labelled variant without archiving)")
	codeSince    = flag.String("code-since", CurrentSince, "the report's main table holds the trials run as shipped on this commit or later (\"\": every trial)")
	slotFlag     = flag.Int("slot", 0, "run side by side with runs of other slots (0-9): slot k names its namespaces pgc<k>- and uses 10.200.k.0/24; each trial records how many other runs held their slot when it started")
	outageScale  = flag.Float64("outage-scale", 1, "scale the network outages of 20 and 30 s (isolations, port cuts, the quorum loss) by this factor, the kills' restarts staying 10 s after them; CI's subset uses 0.5 (trials with another scale than 1 never count in the report's main table)")
	probeTimeout = flag.Duration("probe-timeout", 500*time.Millisecond, "how long the probe gives a node to connect and assign a transaction id, apart from its 100 ms interval")
)

func faultNames() string {
	var n []string
	for _, f := range Faults() {
		n = append(n, f.Name)
	}
	return strings.Join(n, ",")
}

// TestChaos runs every selected fault in every selected mode, -trials times
// each, on a cluster of network namespaces. It needs root, ip and iptables,
// and PGGUARD_CHAOS=1 (set by `make chaos`), because it takes minutes per
// trial and changes the machine's network configuration while it runs.
func TestChaos(t *testing.T) {
	if os.Getenv("PGGUARD_CHAOS") != "1" {
		t.Skip("the chaos suite runs only with PGGUARD_CHAOS=1 (make chaos): it needs root, creates network namespaces and takes minutes per trial")
	}
	if os.Geteuid() != 0 {
		t.Fatal("PGGUARD_CHAOS=1 but not root: network namespaces need root (run make chaos as root)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install -y iproute2 iptables", tool)
		}
	}
	if err := UseSlot(*slotFlag); err != nil {
		t.Fatalf("-slot: %v", err)
	}
	faults, err := FaultsByName(strings.Split(*faultList, ","))
	if err != nil {
		t.Fatalf("-faults: %v (known: %s)", err, faultNames())
	}
	modes := strings.Split(*modeList, ",")
	for _, m := range modes {
		if m != "async" && m != "sync" && m != "strict" {
			t.Fatalf("-modes: %q: use async, sync or strict", m)
		}
	}
	if !(*outageScale > 0 && *outageScale <= 10) {
		t.Fatalf("-outage-scale %g: use a factor above 0 and at most 10 (1 runs the schedules as published)", *outageScale)
	}
	if *resultsPath == "" {
		*resultsPath = filepath.Join(*workDir, "results.jsonl")
	}
	if err := os.MkdirAll(*workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(*workDir, 0o755)
	codeVersion = treeVersion()
	exe := testcluster.Binary(t)
	client := buildClient(t, filepath.Dir(exe))

	lock, err := LockSlot(false)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()

	nodes := []string{"n1", "n2", "n3"}
	h := &harness{t: t}
	h.trapSignals()
	t.Cleanup(h.cleanup)
	n, err := CreateNet(nodes)
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	h.setNet(n)

	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			runMode(t, h, n, exe, client, mode, faults)
		})
	}
	if *reportPath != "" {
		writeReport(t)
	}
}

func runMode(t *testing.T, h *harness, n *Net, exe, client, mode string, faults []Fault) {
	c, dir := startCluster(t, h, n, exe, client, mode)
	defer func() {
		c.Stop()
		h.setCluster(nil)
		if !t.Failed() {
			dropData(t, c.Layout)
		}
	}()
	// Trials round-robin over the faults, so that a run cut short still
	// has every fault tried about as often.
	for i := 0; i < *trials; i++ {
		for _, f := range faults {
			r := runTrial(t, h, c, f, i+1, *seed+int64(i), dir)
			if err := AppendResult(*resultsPath, r); err != nil {
				t.Errorf("record result: %v", err)
			}
			if !r.Healthy {
				// The failure is recorded with its logs; the next trial
				// needs a healthy cluster, so it gets a fresh one rather
				// than a pile of faults on a broken one.
				t.Logf("%s/%s trial %d left the cluster unhealthy (kept in %s): starting a fresh cluster", f.Name, mode, i+1, dir)
				c.Stop()
				c, dir = startCluster(t, h, n, exe, client, mode)
			}
		}
	}
}

// dropData removes the bulk of a cluster whose trials all passed (its data
// directories, etcd members, drill scratch and repository, about 1 GiB a
// run) and keeps what explains a run: the logs, the configuration and the
// trials' records. A failed run keeps everything.
func dropData(t *testing.T, l demo.Layout) {
	paths := []string{l.RepoDir()}
	for _, n := range l.Nodes {
		testcluster.RemoveSharedMemory(filepath.Join(l.NodeDir(n), "data"))
		for _, sub := range []string{"data", "etcd", "drill"} {
			paths = append(paths, filepath.Join(l.NodeDir(n), sub))
		}
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			t.Logf("could not remove %s after a passing run: %v", p, err)
		}
	}
}

// startCluster lays out and starts a fresh cluster in a new directory and
// waits for it to bootstrap.
func startCluster(t *testing.T, h *harness, n *Net, exe, client, mode string) (*Cluster, string) {
	t.Helper()
	dir := filepath.Join(*workDir, fmt.Sprintf("%s-%s", mode, time.Now().UTC().Format("20060102T150405")))
	var edits []func(*config.Config)
	if *withVIP {
		edits = append(edits, func(cfg *config.Config) {
			cfg.Postgres.ListenAddress = "*"
			cfg.VIP = config.VIP{Address: VIPAddr + "/24", Interface: "eth0"}
		})
	}
	if *withProxy {
		edits = append(edits, func(cfg *config.Config) {
			cfg.Proxy.RWListen = fmt.Sprintf("%s:%d", n.Addrs[cfg.Name], proxyPort)
		})
	}
	c, err := NewCluster(dir, n, exe, client, mode, *shipped, edits...)
	if err != nil {
		t.Fatal(err)
	}
	if *withProxy {
		c.ProxyPort = proxyPort
	}
	if *withVIP {
		c.VIP = VIPAddr
	}
	h.setCluster(c)
	for _, node := range n.Nodes {
		if err := c.StartNode(node); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitHealthy(context.Background(), 180*time.Second); err != nil {
		saveLogs(c, filepath.Join(dir, "bootstrap-failure.txt"), err.Error())
		t.Fatalf("%s cluster did not bootstrap: %v (logs in %s)", mode, err, dir)
	}
	if c.Shipped {
		if err := c.InstallJobs(context.Background()); err != nil {
			t.Fatalf("%s cluster: %v (logs in %s)", mode, err, dir)
		}
	}
	return c, dir
}

// runTrial runs one fault on a healthy cluster and checks the outcome.
func runTrial(t *testing.T, h *harness, c *Cluster, f Fault, trial int, seed int64, dir string) Result {
	ctx := context.Background()
	r := Result{Fault: f.Name, Mode: c.Mode, Trial: trial, Seed: seed, Started: time.Now(), Code: codeVersion, Shipped: c.Shipped, Beside: RunsBeside()}
	if *outageScale != 1 {
		r.OutageScale = *outageScale
	}
	tdir := filepath.Join(dir, "trials", fmt.Sprintf("%s-%d", f.Name, trial))
	fail := func(problem string) Result {
		r.Problems = append(r.Problems, problem)
		t.Logf("replication at the failure:%s", saveLogs(c, filepath.Join(tdir, "failure.txt"), problem))
		t.Errorf("%s/%s trial %d (seed %d): %s (records and logs in %s)", f.Name, c.Mode, trial, seed, problem, tdir)
		return r
	}
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureRunning(); err != nil {
		return fail(err.Error())
	}
	before, err := c.WaitHealthy(ctx, *healthBound)
	if err != nil {
		return fail("not healthy before the fault: " + err.Error())
	}
	env := &Env{C: c, Primary: before.Leader, Sync: before.SyncStandbys, Rand: rand.New(rand.NewPCG(uint64(seed), 0x63686173)),
		Logf: t.Logf, Trial: trial, OutageScale: r.OutageScale}
	for _, m := range before.Members {
		if m.Name != before.Leader {
			env.Standbys = append(env.Standbys, m.Name)
		}
	}
	w, err := StartWorkload(c, tdir, time.Now().UnixMilli()*10_000, *probeTimeout)
	if err != nil {
		return fail(err.Error())
	}
	h.setWorkload(w)
	defer h.setWorkload(nil)
	stopVIP := func() {}
	if *withVIP {
		stopVIP = sampleVIP(c.Net.Nodes, &r)
		defer stopVIP()
	}
	if err := waitAcks(ctx, w.Dir, time.Now(), 50, 30*time.Second); err != nil {
		_ = w.Stop()
		return fail("workload did not start: " + err.Error())
	}
	_ = hold(ctx, time.Duration(env.Rand.IntN(1000))*time.Millisecond)
	injectErr := f.Inject(ctx, env)
	r.Victim = env.Victim
	if injectErr != nil {
		r.Problems = append(r.Problems, "fault schedule failed: "+injectErr.Error())
	}
	obs := Observation{Mode: c.Mode, FaultAt: env.FaultAt, RepairedAt: time.Now()}
	// Health counts only from records every member published after the
	// fault: right after a crash the store still shows the healthy past.
	final, err := c.WaitFor(ctx, "full health reported after the fault", *healthBound, c.CaughtUp(func(r status.Report) bool {
		return c.FullyHealthy(r) && PublishedSince(r, env.FaultAt, time.Now())
	}))
	if err == nil {
		obs.Healthy, obs.HealthyAt = true, time.Now()
		// Keep writing for 3 s of health, so that the gap is closed and
		// the new primary has taken writes.
		if err := waitAcks(ctx, w.Dir, obs.HealthyAt.Add(3*time.Second), 1, 30*time.Second); err != nil {
			r.Problems = append(r.Problems, "healthy, but no writes acknowledged 3 s later: "+err.Error())
		}
	} else {
		obs.HealthNote = err.Error()
	}
	obs.End = time.Now()
	if err := w.Stop(); err != nil {
		t.Logf("%v", err)
	}
	stopVIP() // its samples and problems go into r now
	r.FinalPrimary = final.Leader
	if obs.Acks, err = ReadAcks(w.Dir); err != nil {
		return fail("read acks: " + err.Error())
	}
	if obs.Rounds, err = ReadRounds(w.Dir); err != nil {
		return fail("read probe rounds: " + err.Error())
	}
	// The final read is of the leader the store names, and counts only if
	// that server says it is out of recovery (Dump checks): without such
	// a primary, loss is unknown (never "0 lost"); the other checks still
	// hold.
	stored := filepath.Join(tdir, "stored")
	if final.Leader == "" {
		t.Logf("final read: no leader named after the trial, lost writes unknown")
	} else if err := Dump(c, c.NodeDSN(final.Leader), stored); err != nil {
		t.Logf("final read of %s failed: %s", final.Leader, firstLine(err.Error()))
	} else if obs.Stored, err = ReadIDs(stored); err != nil {
		return fail(err.Error())
	}
	Check(obs, &r)
	if env.PrimaryMustStay {
		checkPrimaryStayed(ctx, c, env, final.Leader, &r)
	}
	lost := fmt.Sprint(r.Lost)
	if r.LostUnknown {
		lost = "unknown"
	}
	t.Logf("%s/%s trial %d (seed %d, victim %s): %d acked, %s lost, %d split rounds of %d, %d writes in overlapping acknowledgements of two servers, write gap %.2fs, full health %.1fs after the fault (%.1fs after the repair), final primary %s",
		f.Name, c.Mode, trial, seed, r.Victim, r.Acked, lost, r.SplitRounds, r.ProbeRounds, r.AckSplitWrites, r.WriteGapS, r.TimeToHealthS, r.HealAfterRepairS, r.FinalPrimary)
	if len(r.Problems) > 0 {
		msg := strings.Join(r.Problems, "; ")
		t.Logf("replication at the failure:%s", saveLogs(c, filepath.Join(tdir, "failure.txt"), msg))
		t.Errorf("%s/%s trial %d (seed %d, victim %s): %s (records and logs in %s)", f.Name, c.Mode, trial, seed, r.Victim, msg, tdir)
	}
	return r
}

// checkPrimaryStayed holds a fault that spares the primary to it: the
// primary keeps leading with no fence, stop or restart of its own in the
// history, and in async mode the client's writes pause at most 100 ms.
func checkPrimaryStayed(ctx context.Context, c *Cluster, env *Env, finalLeader string, r *Result) {
	if finalLeader != env.Primary {
		r.Problems = append(r.Problems, fmt.Sprintf("the primary changed from %s to %s although the fault spared it", env.Primary, finalLeader))
	}
	events, err := c.Events(ctx)
	if err != nil {
		r.Problems = append(r.Problems, "cannot read the history to check the primary was left alone: "+err.Error())
		return
	}
	for _, e := range events {
		if e.Node != env.Primary || e.Time.Before(env.FaultAt) {
			continue
		}
		switch e.Action {
		case ha.Fence, ha.Stop, ha.StartPrimary, ha.ReleaseLeader, ha.EventPostmasterExit:
			r.PrimaryDisturbed++
			r.Problems = append(r.Problems, fmt.Sprintf("the primary %s was disturbed %.2fs after the fault: %s (%s) [%s]",
				env.Primary, e.Time.Sub(env.FaultAt).Seconds(), e.Action, e.Reason, e.Result))
		}
	}
	if c.Mode == "async" && r.WriteGapS > 0.1 {
		r.Problems = append(r.Problems, fmt.Sprintf("writes paused %.3fs although the fault spared the primary (async: at most 0.1 s)", r.WriteGapS))
	}
}

// waitAcks polls the acks file until at least n writes were acknowledged
// after since.
func waitAcks(ctx context.Context, dir string, since time.Time, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	seen := 0
	for time.Now().Before(deadline) {
		acks, _ := ReadAcks(dir)
		seen = 0
		for _, a := range acks {
			if a.At.After(since) {
				seen++
			}
		}
		if seen >= n {
			return nil
		}
		if err := hold(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%d of %d writes acknowledged after %s within %s", seen, n, since.Format("15:04:05.000"), timeout)
}

// saveLogs writes the problem, the cluster history, every node's
// replication as PostgreSQL sees it and the tail of every node's logs to
// path, and returns the replication part, which the caller logs too: the
// test's output outlives a cluster directory removed before it was read
// (finding 25).
func saveLogs(c *Cluster, path, problem string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "problem: %s\n\n==== ctl history ====\n%s\n", problem, c.History(context.Background()))
	if r, err := c.Status(context.Background()); err == nil {
		fmt.Fprintf(&b, "==== status ====\n%s\n", Describe(r))
	}
	repl := ReplicationSnapshot(context.Background(), c)
	b.WriteString(repl)
	b.WriteString(testcluster.LogTails(c.Layout, c.Net.Nodes, 80))
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
	return repl
}

// codeVersion is what each result records as its code (treeVersion).
var codeVersion string

// treeVersion names the code a run builds: the commit, with "-dirty" when
// tracked code differs from it (results and reports, which runs rewrite,
// do not count); empty outside a git checkout.
func treeVersion() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(out))
	// go test runs in the package directory: pathspecs are taken from the
	// top of the tree.
	diff := exec.Command("git", "diff", "--quiet", "HEAD", "--", ":(top,glob)**/*.go", ":(top)go.mod", ":(top)go.sum", ":(top)third_party", ":(top)Makefile")
	if diff.Run() != nil {
		v += "-dirty"
	}
	return v
}

// descendsFrom reports whether a trial's commit (its code, "-dirty" or
// not) is base or comes after it, by git ancestry in this checkout; a
// commit git does not know is not.
func descendsFrom(base string) func(string) bool {
	known := map[string]bool{}
	return func(code string) bool {
		commit := strings.TrimSuffix(code, "-dirty")
		if v, ok := known[commit]; ok {
			return v
		}
		v := exec.Command("git", "merge-base", "--is-ancestor", base, commit).Run() == nil
		known[commit] = v
		return v
	}
}

func buildClient(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "chaosclient")
	cmd := exec.Command("go", "build", "-o", out, "github.com/pgguard/pgguard/chaos/cmd/chaosclient")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build chaosclient: %v\n%s", err, b)
	}
	return out
}

func writeReport(t *testing.T) {
	results, err := ReadResults(*resultsPath)
	if err != nil {
		t.Fatalf("read results: %v", err)
	}
	pg := "PostgreSQL"
	if out, err := exec.Command(filepath.Join(config.DetectBinDir(), "postgres"), "--version").Output(); err == nil {
		pg = strings.TrimSpace(strings.TrimPrefix(string(out), "postgres (PostgreSQL) "))
		pg = "PostgreSQL " + pg
	}
	info := ReportInfo{
		Since:    *codeSince,
		Descends: descendsFrom(*codeSince),
		Command:  *reportCmd,
		// The results file as the repository names it.
		Results:    "chaos/" + filepath.Base(*resultsPath),
		Regenerate: *regenCmd,
		Machine:    fmt.Sprintf("%d CPUs, %s/%s, %s, %s; other test suites shared the CPU", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), pg),
		Date:       time.Now().UTC().Format("2006-01-02"),
	}
	// Findings are written by people and kept beside the suite.
	if notes, err := os.ReadFile("FINDINGS.md"); err == nil {
		info.Notes = string(notes)
	}
	f, err := os.Create(*reportPath)
	if err != nil {
		t.Fatalf("write report: %v", err)
	}
	defer f.Close()
	if err := WriteReport(f, info, results); err != nil {
		t.Fatalf("write report: %v", err)
	}
	t.Logf("wrote %s from %d trials in %s", *reportPath, len(results), *resultsPath)
}

// harness remembers what is running, so that a Ctrl-C or a failed test
// removes it: the cluster's processes (by PID), the workload, the network.
type harness struct {
	t    *testing.T
	mu   sync.Mutex
	net  *Net
	c    *Cluster
	w    *Workload
	once sync.Once
}

func (h *harness) setNet(n *Net)           { h.mu.Lock(); h.net = n; h.mu.Unlock() }
func (h *harness) setCluster(c *Cluster)   { h.mu.Lock(); h.c = c; h.mu.Unlock() }
func (h *harness) setWorkload(w *Workload) { h.mu.Lock(); h.w = w; h.mu.Unlock() }

func (h *harness) cleanup() {
	h.once.Do(func() {
		h.mu.Lock()
		c, w := h.c, h.w
		h.mu.Unlock()
		if w != nil {
			_ = w.Stop()
		}
		if c != nil {
			c.Stop()
		}
		if err := CleanNet(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: cleaning the network failed, run make chaos-clean: %v\n", err)
		}
	})
}

func (h *harness) trapSignals() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-sig
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "chaos: %v: removing the cluster and its network\n", s)
		h.cleanup()
		os.Exit(2)
	}()
}

// TestChaosReport rewrites the report from the results gathered so far,
// without running anything (make chaos-report).
func TestChaosReport(t *testing.T) {
	if os.Getenv("PGGUARD_CHAOS") != "1" || *reportPath == "" {
		t.Skip("writes docs/RELIABILITY.md only with PGGUARD_CHAOS=1 and -report (make chaos-report)")
	}
	if *resultsPath == "" {
		*resultsPath = filepath.Join(*workDir, "results.jsonl")
	}
	writeReport(t)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
