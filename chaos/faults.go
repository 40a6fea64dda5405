package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pgguard/pgguard/internal/status"
)

// Env is what a fault sees of the cluster at the moment it is injected.
type Env struct {
	C        *Cluster
	Primary  string
	Standbys []string
	Sync     []string // synchronous standbys (sync modes)
	Rand     *rand.Rand
	Logf     func(format string, args ...any)
	// FaultAt is set by the fault right before its first action.
	FaultAt time.Time
	// Victim names the node(s) the fault hit, for the report.
	Victim string
	// Trial is the trial's number (1-based) within its fault and mode.
	Trial int
	// PrimaryMustStay: the fault does not touch the primary, which must
	// keep leading without a fence or a restart.
	PrimaryMustStay bool
	// OutageScale shortens (or lengthens) the network outages of 20 and
	// 30 s: isolations, port cuts, the quorum loss (0 means 1). The kills'
	// 10 s before the restart stay as they are. CI's subset runs at 0.5.
	OutageScale float64
}

// outage is how long a network outage of the schedule lasts: d scaled by
// OutageScale.
func (e *Env) outage(d time.Duration) time.Duration {
	if e.OutageScale <= 0 {
		return d
	}
	return time.Duration(float64(d) * e.OutageScale)
}

// Fault is one kind of failure. Inject runs the whole schedule — the
// failure, how long it lasts, and the repair an operator or the machine
// would make (restart a killed host, reconnect a cable) — and returns when
// that schedule is over; the cluster must then heal by itself.
type Fault struct {
	Name   string // short, used in flags and file names
	Title  string // what the report shows
	Inject func(ctx context.Context, e *Env) error
}

// hold sleeps as part of a fault schedule (not to wait for a state).
func hold(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (e *Env) others(node string) []string {
	var out []string
	for _, n := range e.C.Net.Nodes {
		if n != node {
			out = append(out, n)
		}
	}
	return out
}

// Faults lists every fault of the suite, in report order.
func Faults() []Fault {
	return []Fault{
		{Name: "host-kill", Title: "primary host killed (kill -9 agent + etcd member + postmaster and every server process; restarted after 10 s)", Inject: hostKill},
		{Name: "postmaster-kill", Title: "primary's postmaster killed (kill -9)", Inject: postmasterKill},
		{Name: "agent-kill", Title: "primary's agent killed (kill -9 of the agent process and so its etcd member, nothing else; agent restarted after 10 s)", Inject: agentKill},
		{Name: "primary-isolated", Title: "primary cut from both peers for 20 s, clients still reach it (iptables)", Inject: primaryIsolated},
		{Name: "primary-repl-cut", Title: "primary cut from its standbys' replication (PostgreSQL port) for 20 s, store still reachable", Inject: primaryReplCut},
		{Name: "primary-store-cut", Title: "primary cut from the store's majority (etcd peer port) for 20 s, replication still flowing", Inject: primaryStoreCut},
		{Name: "standby-kill", Title: "a standby's host killed (kill -9 agent + etcd member + postmaster and every server process), its etcd member made raft leader first; the synchronous one in every other sync trial; restarted after 10 s", Inject: standbyKill},
		{Name: "standby-isolated", Title: "a standby cut from both peers for 20 s (the synchronous one in sync mode)", Inject: standbyIsolated},
		{Name: "etcd-quorum-lost", Title: "etcd majority lost for 30 s (all peer traffic dropped)", Inject: quorumLost},
		{Name: "double-kill", Title: "primary host killed, then the new primary's host before the first returns", Inject: doubleKill},
		{Name: "link-flap", Title: "primary's link down/up every 1–3 s, 5 times", Inject: linkFlap},
	}
}

func hostKill(ctx context.Context, e *Env) error {
	e.Victim = e.Primary
	e.FaultAt = time.Now()
	if err := e.C.Layout.KillNode(e.Primary); err != nil {
		return err
	}
	if err := hold(ctx, 10*time.Second); err != nil {
		return err
	}
	return e.C.StartNode(e.Primary)
}

func postmasterKill(_ context.Context, e *Env) error {
	e.Victim = e.Primary
	e.FaultAt = time.Now()
	return e.C.Layout.KillPostmaster(e.Primary)
}

func agentKill(ctx context.Context, e *Env) error {
	e.Victim = e.Primary
	e.FaultAt = time.Now()
	if err := e.C.KillAgent(e.Primary); err != nil {
		return err
	}
	if err := hold(ctx, 10*time.Second); err != nil {
		return err
	}
	return e.C.StartNode(e.Primary)
}

func isolateFor(ctx context.Context, e *Env, node string, d time.Duration) error {
	e.Victim = node
	e.FaultAt = time.Now()
	err := e.C.Net.Isolate(node, e.others(node))
	if err == nil {
		err = hold(ctx, d)
	}
	return errors.Join(err, e.C.Net.Heal(node))
}

func primaryIsolated(ctx context.Context, e *Env) error {
	return isolateFor(ctx, e, e.Primary, e.outage(20*time.Second))
}

func primaryReplCut(ctx context.Context, e *Env) error {
	return cutPrimaryPort(ctx, e, pgPort)
}

func primaryStoreCut(ctx context.Context, e *Env) error {
	return cutPrimaryPort(ctx, e, peerPort)
}

// cutPrimaryPort cuts the primary from the other nodes on one port for
// 20 s (scaled by OutageScale), the rest of its traffic flowing.
func cutPrimaryPort(ctx context.Context, e *Env, port int) error {
	e.Victim = e.Primary
	e.FaultAt = time.Now()
	err := e.C.Net.IsolatePort(e.Primary, e.others(e.Primary), port)
	if err == nil {
		err = hold(ctx, e.outage(20*time.Second))
	}
	return errors.Join(err, e.C.Net.Heal(e.Primary))
}

func standbyIsolated(ctx context.Context, e *Env) error {
	victim := e.Standbys[e.Rand.IntN(len(e.Standbys))]
	if len(e.Sync) > 0 {
		victim = e.Sync[0]
	}
	return isolateFor(ctx, e, victim, e.outage(20*time.Second))
}

// standbyKill loses a standby's host while its etcd member leads raft, the
// worst moment for the primary: the store elects while the primary must
// renew its lease (issue 11). In sync mode every other trial kills the
// synchronous standby.
func standbyKill(ctx context.Context, e *Env) error {
	victim := e.Standbys[e.Rand.IntN(len(e.Standbys))]
	if len(e.Sync) > 0 {
		sync := e.Trial%2 == 1
		for _, s := range e.Standbys {
			if contains(e.Sync, s) == sync {
				victim = s
				break
			}
		}
	}
	e.Victim = victim
	e.PrimaryMustStay = true
	if err := e.C.MoveStoreLeader(ctx, victim); err != nil {
		return err
	}
	e.FaultAt = time.Now()
	if err := e.C.Layout.KillNode(victim); err != nil {
		return err
	}
	if err := hold(ctx, 10*time.Second); err != nil {
		return err
	}
	return e.C.StartNode(victim)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func quorumLost(ctx context.Context, e *Env) error {
	e.Victim = "all (etcd peers)"
	e.FaultAt = time.Now()
	var err error
	for _, n := range e.C.Net.Nodes {
		if err = e.C.Net.BlockPort(n, peerPort); err != nil {
			break
		}
	}
	if err == nil {
		err = hold(ctx, e.outage(30*time.Second))
	}
	for _, n := range e.C.Net.Nodes {
		err = errors.Join(err, e.C.Net.Heal(n))
	}
	return err
}

func doubleKill(ctx context.Context, e *Env) error {
	first := e.Primary
	e.Victim = first
	e.FaultAt = time.Now()
	if err := e.C.Layout.KillNode(first); err != nil {
		return err
	}
	r, err := e.C.WaitFor(ctx, "a new leader", 60*time.Second, func(r status.Report) bool {
		return r.Leader != "" && r.Leader != first
	})
	if err != nil {
		return errors.Join(err, e.C.StartNode(first))
	}
	second := r.Leader
	e.Victim = first + "," + second
	e.Logf("double-kill: %s leads after %s, killing it too", second, time.Since(e.FaultAt).Round(time.Millisecond))
	if err := e.C.Layout.KillNode(second); err != nil {
		return errors.Join(err, e.C.StartNode(first))
	}
	if err := hold(ctx, 5*time.Second); err != nil {
		return err
	}
	if err := e.C.StartNode(first); err != nil {
		return err
	}
	if err := hold(ctx, 5*time.Second); err != nil {
		return err
	}
	return e.C.StartNode(second)
}

func linkFlap(ctx context.Context, e *Env) error {
	e.Victim = e.Primary
	e.FaultAt = time.Now()
	var err error
	for i := 0; i < 5 && err == nil; i++ {
		if err = e.C.Net.SetLink(e.Primary, false); err != nil {
			break
		}
		err = hold(ctx, time.Second+time.Duration(e.Rand.IntN(2000))*time.Millisecond)
		if upErr := e.C.Net.SetLink(e.Primary, true); upErr != nil {
			return errors.Join(err, upErr)
		}
		if err == nil {
			err = hold(ctx, time.Second+time.Duration(e.Rand.IntN(2000))*time.Millisecond)
		}
	}
	return err
}

// FaultsByName selects faults from a comma-separated list ("" or "all":
// every fault).
func FaultsByName(list []string) ([]Fault, error) {
	all := Faults()
	if len(list) == 0 || (len(list) == 1 && (list[0] == "" || list[0] == "all")) {
		return all, nil
	}
	var out []Fault
	for _, name := range list {
		found := false
		for _, f := range all {
			if f.Name == name {
				out = append(out, f)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown fault %q", name)
		}
	}
	return out, nil
}
