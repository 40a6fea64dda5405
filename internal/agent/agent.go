// Package agent runs pgguard's node loop: observe the local PostgreSQL and
// the cluster store, ask ha.Decide what to do, and do it, one bounded step
// at a time. It owns the processes of its node (the embedded etcd member
// and the postmaster, a direct child) and the memory ha.Decide is given.
//
// It must never decide a role change itself: every promote, fence, rewind
// or reinit comes from ha.Decide. The one exception is the fencing
// watchdog, which only enforces a deadline ha.Decide already set.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/api"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/proxy"
	"github.com/pgguard/pgguard/internal/reposettings"
	"github.com/pgguard/pgguard/internal/vip"
)

// Agent is one node's watcher.
type Agent struct {
	cfg config.Config
	log *slog.Logger
	// exe and configPath run pgguard subcommands (jobs, archiving).
	exe, configPath string
	store           clusterStore
	embedded        *dcs.Embedded
	pg              instance

	conn *pgx.Conn // probe connection to the local instance
	// replayedOn remembers that the standby behind conn replays the
	// timeline tli it receives (observe asks only until it does).
	replayedOn struct {
		conn *pgx.Conn
		tli  int
	}
	// replayHeld is the replay timeline last known on conn (asked, or
	// streaming on the restartpoint's timeline), which observe reuses
	// while nothing can change it.
	replayHeld struct {
		conn *pgx.Conn
		tli  int
	}

	mu  sync.Mutex // guards mem against the fencing watchdog
	mem ha.Memory

	// handOverStop delivers the result of a switchover's clean stop
	// that was still finishing when the candidate had the shutdown
	// checkpoint (nil when none is pending); the release waits for it.
	handOverStop <-chan error

	knownMembers map[string]bool
	witnesses    map[string]bool
	// storeKey is what ha.StoreView.StableSince measures the stability
	// of (raft leadership and the reachable peers), and storeStableSince
	// when it last changed.
	storeKey         string
	storeStableSince time.Time
	lastWaitReason   string
	lastCluster      ha.Cluster
	// linearAt is when the store was last read linearizably (loadCluster).
	linearAt time.Time
	// wasHealthy is the last health result (only to record transitions in
	// the history).
	wasHealthy bool
	// published is the member record last written to the store and when
	// (the core's PublishDue decides when to write again).
	published   ha.Member
	publishedAt time.Time
	// memberRenewedAt is when the member lease was last renewed (by a
	// write of the record or alone).
	memberRenewedAt time.Time
	// api answers the HTTP endpoints from the last loop's view; again
	// asks for the next loop without waiting (a step changed this node's
	// role, which the endpoints must show at once).
	api   apiSource
	again bool
	// cb runs the callbacks of node.yaml on role changes and fences.
	cb *callbacks
	// onEvent receives every history event this agent records (metrics
	// count them, alerts send them); set before Run, called from any
	// goroutine, must not block.
	onEvent []func(dcs.Event)
	// candidatePosition reads how far a switchover candidate has received
	// (receivedLSN when nil), for at most handOverWait (10 s when 0).
	candidatePosition func(ctx context.Context, conninfo string) (lsn.LSN, error)
	handOverWait      time.Duration
	// trust checks ha.trusted_addresses (nil without any).
	trust *trusted
	// proxy is the built-in router (nil unless proxy.rw_listen or
	// ro_listen is set); proxyLag its read-only lag limit in bytes.
	proxy    *proxy.Server
	proxyLag int64
	// diskWas is the disk level last recorded.
	diskWas ha.DiskLevel
	// vip moves the virtual IP with this node's primacy (nil: none).
	vip *vip.Client
	// metrics answers /metrics and counts what the agent does.
	metrics *agentMetrics
	// stream archives the primary's WAL into the repository as it is
	// written (walstream.go).
	stream walStream
	// wal is the repository opened for WAL, shared by the stream and
	// the restore_command server (walfetch.go).
	wal walRepo
}

// Options carry what the agent needs besides its configuration.
type Options struct {
	Account osuser.Account
	Log     *slog.Logger
	// ConfigPath and Executable build the default archive_command and
	// restore_command (pgguard wal-push / wal-fetch with this node.yaml).
	ConfigPath string
	Executable string
	// VIP moves the virtual IP (nil without one): its helper was started
	// before the agent dropped its rights.
	VIP *vip.Client
}

// New prepares an agent from a validated configuration; it starts nothing.
func New(cfg config.Config, opts Options) *Agent {
	acct, log := opts.Account, opts.Log
	p := cfg.Postgres
	inst := pg.New(pg.Options{
		Name: cfg.Name, BinDir: p.BinDir, Programs: p.Programs, Database: p.Database, DataDir: p.DataDir, ListenAddress: p.ListenAddress, Port: p.Port,
		Superuser: p.Superuser.Username, SuperPassword: p.Superuser.Password,
		ReplUser: p.Replication.Username, ReplPassword: p.Replication.Password,
		Parameters: p.Parameters, HBA: p.HBA, InitdbArgs: p.InitdbArgs, TLS: pg.TLS(cfg.PostgresTLS()),
		ArchiveCommand: archiveCommand(cfg, opts), RestoreCommand: restoreCommand(cfg, opts), ApplyDelay: cfg.HA.ApplyDelay.D(),
		Account: acct, LogFile: filepath.Join(filepath.Dir(filepath.Clean(p.DataDir)), "postgres.log"),
	})
	known := map[string]bool{}
	if cfg.Embedded() {
		if peers, err := config.ParseInitialCluster(cfg.Etcd.Embed.InitialCluster); err == nil {
			for name := range peers {
				known[name] = true
			}
		}
	}
	a := &Agent{cfg: cfg, log: log, pg: inst, knownMembers: known, witnesses: map[string]bool{}, exe: opts.Executable, configPath: opts.ConfigPath, vip: opts.VIP}
	a.metrics = newAgentMetrics(a)
	a.onEvent = append(a.onEvent, a.metrics.event)
	return a
}

// archiveCommand is the archive_command every node gets, so archiving
// goes on after a failover whichever node is primary (archive_mode=always).
func archiveCommand(cfg config.Config, o Options) string {
	return walCommand(cfg, o, cfg.Archive.Command, "wal-push", "%p")
}

func restoreCommand(cfg config.Config, o Options) string {
	return walCommand(cfg, o, cfg.Archive.Restore, "wal-fetch", "%f %p")
}

// walCommand is "" without archiving, the configured command when there
// is one, else this binary's sub-command with PostgreSQL's placeholders.
// Both go through pgguard-wal when it is installed beside this binary:
// it confirms a segment the WAL stream stored, and has this agent answer
// restore_command, in milliseconds, and runs pgguard otherwise.
func walCommand(cfg config.Config, o Options, configured, sub, placeholders string) string {
	switch {
	case !cfg.Archive.Enabled:
		return ""
	case configured != "":
		return configured
	}
	exe := o.Executable
	if fast, ok := reposettings.FastWALBeside(exe); ok {
		exe = fast
	}
	return fmt.Sprintf("%s %s -c %s %s", shellQuote(exe), sub, shellQuote(o.ConfigPath), placeholders)
}

// FastWALProgram is archive_command's and restore_command's fast path
// (cmd/pgguard-wal), used when it is installed beside pgguard.
const FastWALProgram = reposettings.FastWALProgram

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (a *Agent) settings() ha.Settings {
	h := a.cfg.HA
	return ha.Settings{
		TTL: h.TTL.D(), SafetyMargin: h.SafetyMargin.D(), LoopInterval: h.LoopInterval.D(),
		MaxLagOnFailover: h.MaximumLagOnFailover, PrimaryStartTimeout: h.PrimaryStartTimeout.D(),
		NoFailover: h.NoFailover, ReinitOnRewindFailure: h.ReinitOnRewindFailure,
		HasRepository:           a.cfg.Repository.URL != "",
		TransferStoreLeadership: a.embedded != nil && h.TransferStoreLeadership,
		ElectionTimeout:         a.electionTimeout(),
		SlotRetention:           h.SlotRetention.D(),
		ApplyDelay:              h.ApplyDelay.D(),
	}
}

// Run starts the store, then loops until ctx ends; then it stops
// PostgreSQL in the safe order and releases the leader key.
func (a *Agent) Run(ctx context.Context) error {
	endpoints := a.cfg.Etcd.Endpoints
	if a.cfg.Embedded() {
		e := a.cfg.Etcd.Embed
		emb, err := dcs.StartEmbedded(dcs.EmbedOptions{
			Name: a.cfg.Name, DataDir: e.DataDir, ClientURL: e.ClientURL, PeerURL: e.PeerURL,
			InitialCluster: e.InitialCluster, Existing: e.InitialClusterState == "existing", ClusterToken: e.ClusterToken,
			HeartbeatMs: e.HeartbeatMs, ElectionMs: e.ElectionMs,
			LogFile: filepath.Join(filepath.Dir(filepath.Clean(e.DataDir)), "etcd.log"),
			CAFile:  a.cfg.Etcd.TLS.CAFile, CertFile: a.cfg.Etcd.TLS.CertFile, KeyFile: a.cfg.Etcd.TLS.KeyFile,
		})
		if err != nil {
			return err
		}
		a.embedded = emb
		defer emb.Close()
		endpoints = []string{e.ClientURL}
	}
	storeTLS, err := a.cfg.Etcd.TLS.ClientConfig()
	if err != nil {
		return err
	}
	store, err := dcs.Open(dcs.Options{Endpoints: endpoints, DialTimeout: a.cfg.Etcd.DialTimeout.D(),
		Cluster: a.cfg.Cluster, Node: a.cfg.Name, TTL: a.cfg.HA.TTL.D(), TLS: storeTLS})
	if err != nil {
		return err
	}
	a.store = store
	defer store.Close()
	a.servePprof(ctx)
	if a.cfg.Witness {
		return a.runWitness(ctx)
	}
	if err := a.startAlerts(ctx); err != nil {
		return err
	}
	if err := a.pg.WritePassFile(); err != nil {
		return err
	}

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	changes, memberChanges := store.Watch(wctx)
	a.cb = newCallbacks(a)
	go a.cb.run(wctx)
	if len(a.cfg.HA.TrustedAddresses) > 0 {
		// The first answer before the first loop: a node cut off from
		// the start must not campaign in its first second.
		a.trust = &trusted{addrs: a.cfg.HA.TrustedAddresses}
		if _, why := a.trust.probe(wctx); why != "" {
			a.log.Warn("isolated: not campaigning", "why", why)
		}
		go a.watchTrusted(wctx)
	}
	go a.fenceWatchdog(wctx)
	a.serveRestoreCommand(wctx)
	if a.cfg.Jobs.Enabled && a.cfg.Repository.URL != "" && a.exe != "" {
		go a.runJobs(wctx)
	}

	a.api.a = a
	defer a.metrics.close()
	if a.cfg.API.Listen != "" {
		opts, err := a.apiOptions(store)
		if err != nil {
			return err
		}
		srv, err := api.Listen(a.cfg.API.Listen, &a.api, opts, a.log)
		if err != nil {
			return err
		}
		go srv.Serve()
		defer srv.Close()
		a.log.Info("api listening", "addr", srv.Addr())
	}
	if px := a.cfg.Proxy; px.RWListen != "" || px.ROListen != "" {
		lag, _ := api.ParseLag(px.ROMaxLag)
		srv, err := proxy.Listen(px.RWListen, px.ROListen, px.Wait.D(), a.log)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		defer srv.Close()
		a.proxy, a.proxyLag = srv, lag.Bytes
		a.log.Info("proxy listening", "addrs", srv.Addrs())
	}
	a.log.Info("agent started", "cluster", a.cfg.Cluster, "node", a.cfg.Name, "data_dir", a.cfg.Postgres.DataDir)
	interval := a.cfg.HA.LoopInterval.D()
	const minGap = 100 * time.Millisecond
	// After a step that changed something the next decision follows at
	// once (a hand-over's release, a promotion's clean-up are the next
	// loop's); twice in a row, the usual gap applies, so that a step that
	// keeps repeating cannot spin.
	const againGap = 5 * time.Millisecond
	againBefore := false
	// A change of the cluster's state (the leader key released to this
	// node, a request) is also acted on at once, not minGap after the
	// last loop began; twice in a row, the gap applies again.
	stateWakeBefore := false
	for {
		started := time.Now()
		leaderChanged := a.raftLeaderChanged()
		a.loopOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		wait := max(interval-time.Since(started), minGap)
		switch {
		case a.again && !againBefore:
			a.again, againBefore, wait = false, true, againGap
		case a.again:
			a.again, againBefore, wait = false, false, minGap
		default:
			againBefore = false
		}
		timer := time.NewTimer(wait)
		stateWake := false
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-changes:
			stateWake = !stateWakeBefore
		case <-a.duringElection(memberChanges):
		case <-a.proxyWaiting(memberChanges):
			// The proxy has no primary to send writes to: the new
			// primary's record is what it waits for.
		case <-leaderChanged:
			// A new raft leader accepts the renewals the election held
			// up: renew now rather than at the next tick.
		case <-a.pg.Crashes():
			// A change of state too, acted on at once, the history
			// written beside: the restart in place is what the clients
			// wait for (a server that keeps failing to start gets the
			// gap every second time, like any repeated wake).
			a.log.Warn("postmaster exited unexpectedly")
			go a.record(context.WithoutCancel(ctx), ha.EventPostmasterExit, "", "postmaster exited unexpectedly", "")
			stateWake = !stateWakeBefore
		}
		timer.Stop()
		if ctx.Err() != nil {
			break
		}
		stateWakeBefore = stateWake
		if wait := minGap - time.Since(started); wait > 0 && !stateWake {
			time.Sleep(wait) // pacing, not waiting for a state
		}
	}
	a.shutdown()
	return nil
}

// loopOnce is one observe → publish → decide → act round.
func (a *Agent) loopOnce(ctx context.Context) {
	obs := a.observe(ctx)
	// A switchover's old primary past its shutdown checkpoint releases
	// the key in this loop: its member record (not healthy, for the
	// moment until the postmaster exits) would put a store write before
	// the release, 20-200 ms of the outage. The next loop publishes.
	if obs.StoreOK && !obs.Local.ShutDown {
		a.publish(ctx, obs)
	}
	a.cb.observe(callbackRole(obs.Local))
	plan := ha.Decide(obs)
	a.execute(ctx, obs, plan)
	a.steerStream(ctx, obs)
	a.api.last.Store(&loopView{obs: obs, at: time.Now()})
	if a.proxy != nil {
		a.proxy.Update(proxy.RouteFrom(obs, a.writableUntil(), a.proxyLag, a.cfg.Proxy.Weights))
	}
	if a.vip != nil {
		// The address goes with the lease: held only while this node runs
		// as the primary it holds the lease for (what /primary answers).
		now := time.Now()
		a.setVIP(ctx, api.NodeFrom(obs, now, a.writableUntil(), false).Role(now) == "primary" && a.pg.Running())
	}
}

// shutdown stops PostgreSQL and, if this node led, then releases the key:
// in that order, so that no other node is promoted while this one still
// accepts writes.
func (a *Agent) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if a.vip != nil {
		a.setVIP(ctx, false)
	}
	// The stream first: a clean shutdown would wait for its last answer.
	a.stopStream()
	a.log.Info("agent stopping: shutting PostgreSQL down")
	if err := a.pg.Stop("fast", 60*time.Second); err != nil {
		a.log.Error("stop postgres", "err", err)
	}
	if a.cb != nil && a.cb.role != ha.RoleNone && a.cb.role != "" {
		// The runner is stopping with the agent: this last one runs here.
		a.cb.exec(ctx, callback{event: "on_stop", role: ha.RoleNone, prev: a.cb.role})
	}
	if a.conn != nil {
		a.conn.Close(ctx)
	}
	// PostgreSQL is down: restore_command is called no more.
	a.closeWAL()
	a.mu.Lock()
	held := a.mem.HoldsLeader
	a.mem = ha.Remember(a.mem, ha.Outcome{Action: ha.Action{Kind: ha.ReleaseLeader}, At: time.Now()})
	a.mu.Unlock()
	if held {
		// Bounded by the lease's TTL: when the store has no quorum (the
		// other members were stopped first, as the last nodes of a cluster
		// are) the release cannot be written, and the lease ends by itself
		// within its TTL, so waiting any longer gains the others nothing.
		sctx, cancel := context.WithTimeout(ctx, a.cfg.HA.TTL.D())
		defer cancel()
		if err := a.store.ReleaseLeader(sctx); err != nil {
			a.log.Error("release leader key", "err", err)
		} else {
			a.record(sctx, ha.ReleaseLeader, "", "agent shut down", "ok")
		}
	}
}

// proxyWaiting passes member-record changes on while the built-in proxy
// knows no primary.
func (a *Agent) proxyWaiting(members <-chan struct{}) <-chan struct{} {
	if a.proxy == nil || a.proxy.HasPrimary() {
		return nil
	}
	return members
}

// duringElection passes member-record changes on only while the cluster
// has no leader: candidates then wait for each other's positions, and the
// rest of the time every agent republishing its record each loop would
// wake every other agent for nothing.
func (a *Agent) duringElection(members <-chan struct{}) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem.LeaderLostAt.IsZero() {
		return nil
	}
	return members
}

// fenceWatchdog stops a primary whose lease renewal is overdue even when
// the loop itself is stuck in an action: ha.Decide sets the same deadline,
// this only makes sure it is kept.
func (a *Agent) fenceWatchdog(ctx context.Context) {
	limit := a.cfg.HA.TTL.D() - a.cfg.HA.SafetyMargin.D()
	ticks(ctx, 100*time.Millisecond, func() bool {
		a.mu.Lock()
		overdue := a.mem.HoldsLeader && !a.mem.LastRenew.IsZero() && time.Since(a.mem.LastRenew) >= limit
		if overdue {
			a.mem = ha.Remember(a.mem, ha.Outcome{Action: ha.Action{Kind: ha.Fence}, At: time.Now()})
		}
		a.mu.Unlock()
		if overdue && a.pg.Running() {
			// Nothing may come before the stop: it is what keeps two
			// primaries apart (chaos finding 14: a history record of the
			// address's removal, made here first, waited 0.86 s for a
			// store it could not reach, and the fence came after the
			// next primary's promotion).
			a.log.Error("leader lease renewal overdue: fencing (immediate shutdown)", "limit", limit)
			_ = a.pg.Stop("immediate", 5*time.Second)
			a.setVIP(ctx, false)
			a.cb.enqueue(callback{event: "on_fence", role: ha.RoleNone, prev: ha.RolePrimary})
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			a.record(rctx, ha.Fence, "", fmt.Sprintf("watchdog: no lease renewal for %s", limit), "ok")
			cancel()
		}
		return true
	})
}

// setVIP adds or removes the virtual IP and records the change. It never
// waits for the store: it runs where the store may be out of reach (a
// fence), so the history record goes in the background.
func (a *Agent) setVIP(ctx context.Context, hold bool) {
	changed, err := a.vip.Set(hold)
	bg := context.WithoutCancel(ctx)
	switch {
	case err != nil:
		a.log.Error("virtual IP", "hold", hold, "err", err)
		go a.record(bg, ha.EventVIP, a.cfg.VIP.Address, fmt.Sprintf("hold=%v", hold), "failed: "+err.Error())
	case changed:
		action, why := ha.EventVIPAdd, "this node is the primary holding the lease"
		if !hold {
			action, why = ha.EventVIPDel, "this node is no longer (or soon not) the primary holding the lease"
		}
		a.log.Info("virtual IP", "action", action, "address", a.cfg.VIP.Address)
		go a.record(bg, action, a.cfg.VIP.Address, why, "ok")
	}
}

// record appends a history event; failures are logged, never fatal.
func (a *Agent) record(ctx context.Context, action ha.Kind, target, reason, result string) {
	if a.store == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	e := dcs.Event{Time: time.Now(), Node: a.cfg.Name, Action: action, Target: target, Reason: reason, Result: result}
	if err := a.store.AppendHistory(rctx, e); err != nil {
		a.log.Debug("history not recorded", "err", err)
	}
	for _, fn := range a.onEvent {
		fn(e)
	}
}

// peers lists every member this agent knows of: the configured peers and
// every member it has seen publish, alive or not.
// A witness (registered in the store, or publishing as one) is no
// database peer and is left out.
func (a *Agent) peers(c ha.Cluster) []string {
	for name, m := range c.Members {
		a.knownMembers[name] = true
		if m.Role == ha.RoleWitness {
			a.witnesses[name] = true
		}
	}
	for _, w := range c.Witnesses {
		a.witnesses[w] = true
	}
	for _, r := range c.Config.Removed {
		delete(a.knownMembers, r)
	}
	out := make([]string, 0, len(a.knownMembers))
	for name := range a.knownMembers {
		if !a.witnesses[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
