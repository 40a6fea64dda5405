package ops

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// ReinitPlan is a reinit's check and the source it rebuilds from.
type ReinitPlan struct {
	Plan
	Node   string `json:"node"`
	Leader string `json:"leader"`
	Source string `json:"source"`
	read   int64  // the store revision the checks read
}

// PlanReinit checks rebuilding node from a base backup of the primary or,
// with fromBackup, from the newest backup of its repository.
func (o *Ops) PlanReinit(ctx context.Context, node string, fromBackup bool) (ReinitPlan, error) {
	c, err := o.load(ctx)
	if err != nil {
		return ReinitPlan{}, err
	}
	p := ReinitPlan{Plan: newPlan("reinit of "+node, ha.ReinitChecks(c, node, fromBackup)), Node: node, Leader: leaderName(c), read: c.Revision}
	p.Source = "a base backup of " + p.Leader
	if fromBackup {
		p.Source = "the newest backup, then streaming from " + p.Leader
	}
	if p.OK && fromBackup && !c.Members[node].Repository {
		return p, badInput("%s has no backup repository (repository.url in its config): configure one and restart its agent, or reinit without --from-backup", node)
	}
	return p, nil
}

// Reinit requests the rebuild of node and waits (up to wait) until it
// streams again from the primary.
func (o *Ops) Reinit(ctx context.Context, node string, fromBackup bool, wait time.Duration) error {
	p, err := o.PlanReinit(ctx, node, fromBackup)
	if err != nil {
		return err
	}
	if err := p.Refusal(); err != nil {
		return err
	}
	cctx, cancel := o.call(ctx)
	defer cancel()
	if err := o.Store.RequestReinit(cctx, node, fromBackup, p.read); err != nil {
		return err
	}
	_ = o.record(ctx, dcs.Event{Action: ha.EventReinitRequest, Target: node, Reason: "from " + p.Source})
	return o.waitRebuilt(ctx, wait, "reinit of "+node, p.Leader, node)
}

// StopStartPlan is a planned stop or start: the nodes in the order they
// are handled (standbys before the primary on a stop, the primary first on
// a start) and the conditions.
type StopStartPlan struct {
	Plan
	Stop  bool     `json:"stop"`
	Order []string `json:"order"`
}

// PlanStopStart checks a planned stop (or start) of node, or of every
// node when node is empty.
func (o *Ops) PlanStopStart(ctx context.Context, node string, stop bool) (StopStartPlan, error) {
	c, err := o.load(ctx)
	if err != nil {
		return StopStartPlan{}, err
	}
	leader := leaderName(c)
	var order []string
	if node == "" {
		names := c.MemberNames()
		for _, n := range c.Config.Stopped {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if n != leader {
				order = append(order, n)
			}
		}
		if leader != "" {
			if stop {
				order = append(order, leader) // standbys first
			} else {
				order = append([]string{leader}, order...) // primary first
			}
		}
	} else {
		order = []string{node}
	}
	var checks []ha.Check
	switch {
	case node == "" && stop:
		checks = ha.StopAllChecks(c)
	case node == "":
		checks = ha.StartAllChecks(c)
	case stop:
		checks = ha.StopChecks(c, node)
	default:
		checks = ha.StartChecks(c, node)
	}
	title := map[bool]string{true: "stop", false: "start"}[stop] + " of " + strings.Join(order, ", ")
	return StopStartPlan{Plan: newPlan(title, checks), Stop: stop, Order: order}, nil
}

// StopStart carries out a planned stop or start (node empty: all), one
// node after the other, each awaited (up to wait) before the next.
func (o *Ops) StopStart(ctx context.Context, node string, stop bool, wait time.Duration) error {
	p, err := o.PlanStopStart(ctx, node, stop)
	if err != nil {
		return err
	}
	if err := p.Refusal(); err != nil {
		return err
	}
	return o.stopStart(ctx, p.Order, stop, wait)
}

func (o *Ops) stopStart(ctx context.Context, order []string, stop bool, wait time.Duration) error {
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	for _, node := range order {
		if err := o.setStopped(ctx, node, stop); err != nil {
			return err
		}
		what := "stop of " + node
		cond := func(c ha.Cluster) bool { return c.Members[node].State == "stopped (planned)" }
		if !stop {
			what = "start of " + node
			cond = func(c ha.Cluster) bool {
				m := c.Members[node]
				// A standby held by 'ctl replay --until' stops at its
				// target and streams no more: up and in recovery is done.
				if req, held := c.Replay[node]; held && !req.Until.IsZero() && m.Role == ha.RoleStandby {
					return m.State == "running" || m.Streaming
				}
				return m.Healthy && (m.Role == ha.RolePrimary || m.Streaming)
			}
		}
		if err := o.WaitFor(ctx, wait, what, cond); err != nil {
			return err
		}
	}
	return nil
}

func (o *Ops) setStopped(ctx context.Context, node string, stop bool) error {
	cctx, cancel := o.call(ctx)
	defer cancel()
	if _, err := o.Store.UpdateConfig(cctx, func(c *ha.ClusterConfig) error {
		c.Stopped = ha.WithMember(c.Stopped, node, stop)
		return nil
	}); err != nil {
		return err
	}
	action := ha.EventStart
	if stop {
		action = ha.Stop
	}
	return o.record(ctx, dcs.Event{Action: action, Target: node, Reason: "planned " + string(action)})
}

// PlanRollingRestart checks a rolling restart.
func (o *Ops) PlanRollingRestart(ctx context.Context) (Plan, error) {
	p, _, err := o.planRollingRestart(ctx, 0)
	return p, err
}

// rollingSettle is how long a rolling restart waits for a failing
// condition that passes by itself (a switchover candidate catching up),
// as its switchover does.
const rollingSettle = 10 * time.Second

// planRollingRestart checks a rolling restart, re-reading the cluster for
// up to settle while only transient conditions fail.
func (o *Ops) planRollingRestart(ctx context.Context, settle time.Duration) (Plan, ha.Cluster, error) {
	return o.settle(ctx, settle, func(c ha.Cluster) (Plan, error) {
		return newPlan("rolling restart", ha.RollingRestartChecks(c)), nil
	})
}

// RollingRestart restarts every node with no lost write: the standbys one
// by one, then a switchover, then the old primary.
func (o *Ops) RollingRestart(ctx context.Context) error {
	p, c, err := o.planRollingRestart(ctx, rollingSettle)
	if err != nil {
		return err
	}
	if err := p.Refusal(); err != nil {
		return err
	}
	old := leaderName(c)
	for _, n := range c.MemberNames() {
		if n == old {
			continue
		}
		for _, stop := range []bool{true, false} {
			if err := o.StopStart(ctx, n, stop, 0); err != nil {
				return err
			}
		}
	}
	res, err := o.Switchover(ctx, SwitchoverRequest{Settle: rollingSettle})
	if err != nil {
		return err
	}
	o.progress("switchover %s → %s done in %s; write outage %s", res.From, res.To, res.Took.Round(time.Millisecond), res.OutageText())
	for _, stop := range []bool{true, false} {
		if err := o.StopStart(ctx, old, stop, 0); err != nil {
			return err
		}
	}
	return nil
}

// ReplayHold is a request to hold a standby's replay (HA-13).
type ReplayHold struct {
	Node string
	// Until restarts the standby replaying up to this time, then paused.
	Until time.Time
	// Pause pauses replay now; with neither Until nor Pause, replay
	// resumes (the standby stays held as delayed until Cancel).
	Pause bool
	// Cancel withdraws the request.
	Cancel bool
	Now    time.Time // for the check that Until is not in the future
}

// Replay writes a replay hold for a standby and returns what it asks.
func (o *Ops) Replay(ctx context.Context, h ReplayHold) (string, error) {
	if !h.Until.IsZero() && h.Until.After(h.Now) {
		return "", badInput("--until %s is in the future: a standby cannot replay what has not happened", h.Until.UTC().Format(time.RFC3339))
	}
	if err := o.KnownNode(ctx, h.Node); err != nil {
		return "", err
	}
	cctx, cancel := o.call(ctx)
	defer cancel()
	req := ha.ReplayRequest{Until: h.Until, Pause: h.Pause}
	var what string
	var err error
	switch {
	case h.Cancel:
		err, what = o.Store.CancelReplay(cctx, h.Node), "replay request withdrawn"
	case !h.Until.IsZero():
		err, what = o.Store.SetReplay(cctx, h.Node, req), "replay up to "+h.Until.UTC().Format(time.RFC3339Nano)+", then paused"
	case h.Pause:
		err, what = o.Store.SetReplay(cctx, h.Node, req), "replay paused"
	default:
		err, what = o.Store.SetReplay(cctx, h.Node, req), "replay resumed (held as delayed until --cancel)"
	}
	if err != nil {
		return "", err
	}
	_ = o.record(ctx, dcs.Event{Node: h.Node, Action: ha.EventReplayRequest, Reason: what, Result: "requested"})
	return what, nil
}

// MoveStoreLeader moves the store's raft leadership to node's etcd member.
func (o *Ops) MoveStoreLeader(ctx context.Context, node string) error {
	cctx, cancel := o.call(ctx)
	defer cancel()
	if err := o.Store.MoveStoreLeader(cctx, node); err != nil {
		return err
	}
	return o.record(ctx, dcs.Event{Action: ha.EventStoreLeaderMove, Target: node})
}

// KnownNode refuses a node that neither publishes a status nor has a
// member in the embedded store.
func (o *Ops) KnownNode(ctx context.Context, node string) error {
	c, err := o.load(ctx)
	if err != nil {
		return err
	}
	if _, ok := c.Members[node]; ok {
		return nil
	}
	cctx, cancel := o.call(ctx)
	defer cancel()
	members, _ := o.Store.Members(cctx)
	for _, m := range members {
		if m.Name == node {
			return nil
		}
	}
	return badInput("unknown node %q: the members of cluster %s are %s", node, o.Cluster, strings.Join(c.MemberNames(), ", "))
}
