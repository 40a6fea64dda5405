package ops

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
)

// SwitchoverRequest hands the primary role to a standby.
type SwitchoverRequest struct {
	// To is the candidate; empty picks the best caught-up standby.
	To string
	// At schedules the switchover; zero means now.
	At time.Time
	// Settle is how long a failing condition that passes by itself in a
	// moment (a candidate a few segments behind, a stream reconnecting)
	// may take to pass before the switchover is refused; the plan is read
	// again meanwhile. Zero refuses on the first reading.
	Settle time.Duration
	// Wait bounds the wait for the switchover to finish (0: 60s).
	Wait time.Duration
}

// SwitchoverResult is a finished (or scheduled) switchover.
type SwitchoverResult struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Scheduled time.Time `json:"scheduled,omitzero"` // set when the switchover was scheduled, not run
	// Took is from the request to the old primary streaming from the new
	// one.
	Took time.Duration `json:"took_ns"`
	// Outage is from the old primary's clean stop to the new primary's
	// promotion, read from the history: the time no node took writes
	// (0 when the history lacks either).
	Outage time.Duration `json:"outage_ns"`
}

// OutageText is the outage for people: the duration and what it spans, or
// why it is not known.
func (r SwitchoverResult) OutageText() string {
	if r.Outage <= 0 {
		return "unknown (the history lacks the old primary's stop or the promotion; see 'pgguard ctl history')"
	}
	return r.Outage.Round(time.Millisecond).String() + " (primary stopped → new primary promoted)"
}

// PlanSwitchover checks a switchover to req.To (or picks the candidate)
// and returns who would hand over to whom with every condition. With
// req.Settle it re-reads the cluster while only transient conditions fail.
func (o *Ops) PlanSwitchover(ctx context.Context, req SwitchoverRequest) (from, to string, plan Plan, err error) {
	plan, _, err = o.settle(ctx, req.Settle, func(c ha.Cluster) (Plan, error) {
		if c.Leader == nil {
			return Plan{}, fmt.Errorf("cluster %s has no leader: nothing to switch over (see 'pgguard ctl status')", o.Cluster)
		}
		from, to = c.Leader.Name, req.To
		if to == "" {
			// None ready: wait for the nearest one if it only has to
			// catch up (a choice that may change at the next read).
			if to = ha.BestSwitchoverCandidate(c, from); to == "" {
				to = ha.NearestSwitchoverCandidate(c, from)
			}
			if to == "" {
				to = "(none)"
			}
		} else if _, known := c.Members[to]; !known {
			return Plan{}, badInput("--to %q: no such member (members: %s)", to, strings.Join(c.MemberNames(), ", "))
		}
		return newPlan(fmt.Sprintf("switchover %s → %s", from, to), ha.SwitchoverChecks(c, from, to)), nil
	})
	if err != nil && plan.Op == "" {
		// No plan was made (the read or the request failed): no one to
		// name either. A cancelled wait keeps its last plan.
		return "", "", Plan{}, err
	}
	return from, to, plan, err
}

// settle reads the cluster and plans on it, and while only transient
// conditions fail reads and plans again every poll, for up to d. An error
// of plan ends it at once; a cancelled ctx returns the last plan with the
// context's error.
func (o *Ops) settle(ctx context.Context, d time.Duration, plan func(ha.Cluster) (Plan, error)) (Plan, ha.Cluster, error) {
	deadline := time.Now().Add(d)
	for {
		c, err := o.load(ctx)
		if err != nil {
			return Plan{}, c, err
		}
		p, err := plan(c)
		if err != nil || p.OK || !onlyTransient(p) || !time.Now().Before(deadline) {
			return p, c, err
		}
		select {
		case <-ctx.Done():
			return p, c, ctx.Err()
		case <-time.After(o.poll()):
		}
	}
}

func onlyTransient(p Plan) bool {
	for _, f := range p.Failed() {
		if !f.Transient {
			return false
		}
	}
	return true
}

// Switchover checks, writes the request and, unless it is scheduled,
// waits until the candidate leads and the old primary streams from it.
func (o *Ops) Switchover(ctx context.Context, req SwitchoverRequest) (SwitchoverResult, error) {
	from, to, plan, err := o.PlanSwitchover(ctx, req)
	if err != nil {
		return SwitchoverResult{}, err
	}
	if err := plan.Refusal(); err != nil {
		return SwitchoverResult{From: from, To: to}, err
	}
	cctx, cancel := o.call(ctx)
	defer cancel()
	if err := o.Store.RequestSwitchover(cctx, ha.Switchover{From: from, To: to, At: req.At, By: o.By}); err != nil {
		return SwitchoverResult{}, err
	}
	_ = o.record(ctx, dcs.Event{Action: ha.EventSwitchoverRequest, Target: to, Reason: fmt.Sprintf("switchover %s → %s", from, to)})
	res := SwitchoverResult{From: from, To: to}
	if !req.At.IsZero() {
		res.Scheduled = req.At
		return res, nil
	}
	requested := time.Now()
	wait := req.Wait
	if wait <= 0 {
		wait = 60 * time.Second
	}
	res.Outage, err = o.waitSwitchover(ctx, from, to, requested, wait)
	res.Took = time.Since(requested)
	return res, err
}

// CancelSwitchover withdraws a scheduled switchover.
func (o *Ops) CancelSwitchover(ctx context.Context) error {
	cctx, cancel := o.call(ctx)
	defer cancel()
	if err := o.Store.CancelSwitchover(cctx); err != nil {
		return err
	}
	return o.record(ctx, dcs.Event{Action: ha.EventSwitchoverCancel})
}

// waitSwitchover polls until to leads and from streams from it, then reads
// the outage from the history: from the old primary's clean stop to the
// new primary's promotion.
func (o *Ops) waitSwitchover(ctx context.Context, from, to string, since time.Time, limit time.Duration) (time.Duration, error) {
	var last ha.Cluster
	quiet := *o
	quiet.Progress = nil
	err := quiet.WaitFor(ctx, limit, fmt.Sprintf("switchover %s → %s", from, to), func(c ha.Cluster) bool {
		last = c
		return c.Leader != nil && c.Leader.Name == to && c.Members[from].Streaming && c.Members[from].Following == to
	})
	if err != nil {
		return 0, fmt.Errorf("switchover %s → %s not finished after %s: leader is %q, %s is %s (see 'pgguard ctl history')",
			from, to, limit, leaderName(last), from, last.Members[from].State)
	}
	// Each agent records a step once it is done, and the store may have
	// shown the new roles first: look again for a while when the two
	// records are not both there yet.
	var stop, promoted time.Time
	for deadline := time.Now().Add(3 * time.Second); ; {
		hctx, cancel := o.call(ctx)
		events, err := o.Store.History(hctx, since.Add(-time.Second))
		cancel()
		if err != nil {
			return 0, err
		}
		for _, e := range events {
			if e.Node == from && e.Action == ha.EventSwitchoverStop && stop.IsZero() {
				stop = e.Time
			}
			if e.Node == to && e.Action == ha.Promote && strings.HasPrefix(e.Result, "ok") {
				promoted = e.Time
			}
		}
		if (!stop.IsZero() && !promoted.IsZero()) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(o.poll()):
		}
	}
	if stop.IsZero() || promoted.IsZero() {
		return 0, nil
	}
	return promoted.Sub(stop), nil
}

// TakeoverPlan is a takeover's check: the candidate, every condition, the
// hard ones --force cannot override, and what a forced takeover may lose.
type TakeoverPlan struct {
	Plan
	To string `json:"to"`
	// Hard lists the failing conditions that even --force cannot override.
	Hard []ha.Check `json:"hard,omitempty"`
	// Loss is the WAL (bytes) a forced takeover may drop: what the last
	// primary wrote after the candidate's position.
	Loss     int64   `json:"loss_bytes"`
	Position lsn.LSN `json:"position"`
	Optime   lsn.LSN `json:"optime"`
}

// PlanTakeover checks a takeover by to (empty: the healthy standby with
// the most WAL).
func (o *Ops) PlanTakeover(ctx context.Context, to string) (TakeoverPlan, error) {
	c, err := o.load(ctx)
	if err != nil {
		return TakeoverPlan{}, err
	}
	if to == "" {
		to = ha.BestTakeoverCandidate(c)
	} else if _, ok := c.Members[to]; !ok {
		return TakeoverPlan{}, badInput("--to %q: no such live member (members: %s)", to, strings.Join(c.MemberNames(), ", "))
	}
	p := TakeoverPlan{Plan: newPlan("takeover by "+to, ha.TakeoverChecks(c, to, false)), To: to,
		Hard: ha.Failed(ha.TakeoverChecks(c, to, true)), Optime: c.Optime, Position: c.Members[to].Position()}
	if c.Optime > p.Position {
		p.Loss = int64(c.Optime - p.Position)
	}
	return p, nil
}

// Takeover promotes p.To by hand. force accepts failing safety conditions
// (never the hard ones); the plan is read again first, so a takeover
// confirmed on an older reading is checked on the current one.
func (o *Ops) Takeover(ctx context.Context, to string, force bool, wait time.Duration) (TakeoverPlan, error) {
	p, err := o.PlanTakeover(ctx, to)
	if err != nil {
		return p, err
	}
	failed := p.Failed()
	if len(failed) > 0 && !force {
		return p, &RefusedError{Plan: p.Plan, Hint: " (--force overrides the safety conditions, not the hard ones)"}
	}
	if len(p.Hard) > 0 {
		return p, &RefusedError{Plan: newPlan("takeover by "+p.To, p.Hard), Hint: " (--force cannot override this condition)"}
	}
	reason := "takeover"
	if len(failed) > 0 {
		reason = fmt.Sprintf("forced takeover: up to %d bytes of WAL may be lost (%s)", p.Loss, failed[0].Name)
	}
	cctx, cancel := o.call(ctx)
	defer cancel()
	if err := o.Store.RequestTakeover(cctx, ha.Takeover{To: p.To, Force: len(failed) > 0, By: o.By}); err != nil {
		return p, err
	}
	_ = o.record(ctx, dcs.Event{Action: ha.EventTakeoverRequest, Target: p.To, Reason: reason})
	if wait <= 0 {
		wait = 60 * time.Second
	}
	return p, o.WaitFor(ctx, wait, "takeover by "+p.To, func(c ha.Cluster) bool {
		return c.Leader != nil && c.Leader.Name == p.To && c.Members[p.To].Role == ha.RolePrimary
	})
}
