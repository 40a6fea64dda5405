// Package ops is the operations layer: every operator action on a running
// cluster — switchover, takeover, pause and resume, detach and attach,
// planned stop and start, rolling restart, reinit, whole-cluster restore,
// replay holds, membership and run-time configuration — as a function
// with a typed request and a typed result. `pgguard ctl` calls it today;
// the REST API and the web console call the same functions, so that every
// front end checks the same conditions and writes the same requests.
//
// An operation reads the cluster from the store, checks the pure
// conditions of internal/ha (the `--check` answer is the Plan), writes a
// request or a configuration change, records it in the history and, when
// asked, waits for the agents to carry it out. It never touches
// PostgreSQL or a node's files and never decides what the agents decide:
// the node that executes a request is driven by ha.Decide.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// Store is what the operations need of the consensus store.
type Store interface {
	dcs.StatusSource // Load, LeaderLease, Members
	History(ctx context.Context, since time.Time) ([]dcs.Event, error)
	AppendHistory(ctx context.Context, e dcs.Event) error
	UpdateConfig(ctx context.Context, edit func(*ha.ClusterConfig) error) (ha.ClusterConfig, error)
	RequestSwitchover(ctx context.Context, sw ha.Switchover) error
	CancelSwitchover(ctx context.Context) error
	RequestTakeover(ctx context.Context, tk ha.Takeover) error
	RequestReinit(ctx context.Context, node string, fromBackup bool, read int64) error
	RequestClusterRestore(ctx context.Context, r ha.ClusterRestore) error
	CancelClusterRestore(ctx context.Context) error
	SetReplay(ctx context.Context, node string, req ha.ReplayRequest) error
	CancelReplay(ctx context.Context, node string) error
	MoveStoreLeader(ctx context.Context, name string) error
	RemoveNode(ctx context.Context, node string) (dcs.RemoveResult, error)
	AddNode(ctx context.Context, node, peerURL string) (dcs.AddResult, error)
}

// Ops runs operations on one cluster. Its zero Poll and Progress are
// usable defaults.
type Ops struct {
	Store   Store
	Cluster string
	// By names who asks, for the history ("alice@host", an API token's
	// name).
	By string
	// Progress receives one line per finished phase ("stop of n2: done in
	// 1.2s"); nil discards them.
	Progress io.Writer
	// Poll is how often a wait reads the store (default 100ms).
	Poll time.Duration
	// Call bounds each single store call (default 5s).
	Call time.Duration
}

// A request that is wrong in itself (an unknown node, a bad time) is a
// badinput error: a person must change it. The CLI exits 2, the API
// answers 400.
var badInput = badinput.Errorf

// IsInput reports whether err is bad input.
func IsInput(err error) bool { return badinput.Is(err) }

// Plan is the answer to a check (`--check`, `?dry_run=1`): every
// condition of an operation with pass or fail.
type Plan struct {
	Op     string     `json:"operation"`
	Checks []ha.Check `json:"checks"`
	OK     bool       `json:"ok"`
}

func newPlan(op string, checks []ha.Check) Plan {
	return Plan{Op: op, Checks: checks, OK: len(ha.Failed(checks)) == 0}
}

// WriteTable prints the plan: its title, then each condition with pass or
// FAIL and its detail.
func (p Plan) WriteTable(w io.Writer) error {
	fmt.Fprintln(w, p.Op)
	for _, c := range p.Checks {
		mark := "pass"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %-38s %s\n", mark, c.Name, c.Detail)
	}
	return nil
}

// Failed lists the conditions that fail.
func (p Plan) Failed() []ha.Check { return ha.Failed(p.Checks) }

// Refusal is the error of a plan with a failing condition (nil when all
// pass).
func (p Plan) Refusal() error {
	if p.OK {
		return nil
	}
	return &RefusedError{Plan: p}
}

// RefusedError is an operation the cluster's state does not allow now; the
// plan says which conditions fail. The API answers 409.
type RefusedError struct {
	Plan Plan
	Hint string
}

func (e *RefusedError) Error() string {
	f := e.Plan.Failed()
	if len(f) == 0 {
		return e.Plan.Op + " refused" + e.Hint
	}
	return fmt.Sprintf("%s refused: %s: %s%s", e.Plan.Op, f[0].Name, f[0].Detail, e.Hint)
}

// IsRefused reports whether err is a RefusedError, and returns its plan.
func IsRefused(err error) (Plan, bool) {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Plan, true
	}
	return Plan{}, false
}

func (o *Ops) poll() time.Duration {
	if o.Poll <= 0 {
		return 100 * time.Millisecond
	}
	return o.Poll
}

func (o *Ops) call(ctx context.Context) (context.Context, context.CancelFunc) {
	d := o.Call
	if d <= 0 {
		d = 5 * time.Second
	}
	return context.WithTimeout(ctx, d)
}

func (o *Ops) progress(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// load reads the cluster once.
func (o *Ops) load(ctx context.Context) (ha.Cluster, error) {
	cctx, cancel := o.call(ctx)
	defer cancel()
	c, err := o.Store.Load(cctx)
	if err != nil {
		return c, fmt.Errorf("cluster %s: %w", o.Cluster, err)
	}
	return c, nil
}

// record appends an operator's event to the history. The request it
// describes is already in the store, so a failure to record is returned
// to the caller but has changed nothing else.
func (o *Ops) record(ctx context.Context, e dcs.Event) error {
	cctx, cancel := o.call(ctx)
	defer cancel()
	if e.Node == "" {
		e.Node = "ctl"
	}
	e.By = o.By
	if e.Result == "" {
		e.Result = "ok"
	}
	return o.Store.AppendHistory(cctx, e)
}

// WaitFor polls the store until cond holds; what names the wait in the
// error, which then says what every member last showed.
func (o *Ops) WaitFor(ctx context.Context, limit time.Duration, what string, cond func(ha.Cluster) bool) error {
	started := time.Now()
	deadline := started.Add(limit)
	var last ha.Cluster
	for {
		if c, err := o.load(ctx); err == nil {
			last = c
			if cond(c) {
				o.progress("%s: done in %s", what, time.Since(started).Round(time.Millisecond))
				return nil
			}
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.poll()):
		}
	}
	var states []string
	for _, n := range last.MemberNames() {
		states = append(states, n+"="+last.Members[n].State)
	}
	return fmt.Errorf("%s not finished after %s; last seen: %s (see 'pgguard ctl history')", what, limit, strings.Join(states, " "))
}

// waitRebuilt waits until the rebuild requests of nodes are done and each
// of them streams from leader, as published after the request was cleared:
// a record written before the rebuild (still saying "streaming") does not
// count, which the store revisions decide, not clocks.
func (o *Ops) waitRebuilt(ctx context.Context, limit time.Duration, what, leader string, nodes ...string) error {
	began := time.Now()
	var cleared int64
	quiet := *o
	quiet.Progress = nil
	err := quiet.WaitFor(ctx, limit, what, func(c ha.Cluster) bool {
		for _, n := range nodes {
			if c.Reinit[n] {
				return false
			}
		}
		cleared = c.Revision
		return true
	})
	if err != nil {
		return err
	}
	err = quiet.WaitFor(ctx, limit, what, func(c ha.Cluster) bool {
		if c.Leader == nil || c.Leader.Name != leader {
			return false
		}
		for _, n := range nodes {
			m := c.Members[n]
			if m.Revision <= cleared || !m.Streaming || m.Following != leader {
				return false
			}
		}
		return true
	})
	if err == nil {
		o.progress("%s: done in %s", what, time.Since(began).Round(time.Millisecond))
	}
	return err
}

func leaderName(c ha.Cluster) string {
	if c.Leader == nil {
		return ""
	}
	return c.Leader.Name
}
