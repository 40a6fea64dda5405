package ops

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/restore"
)

// RestoreClusterRequest rolls the whole cluster back to a backup or a
// point in time (RS-5, HA-16).
type RestoreClusterRequest struct {
	Target restore.Target // its Inclusive is set from Exclusive
	// Exclusive stops just before the target transaction instead of just
	// after it.
	Exclusive bool
	// Backup names the backup to restore; empty: the newest that ends
	// before the target.
	Backup string
	// Node restores and becomes the primary; empty: the current primary.
	Node string
	// Wait bounds each phase (the primary's restore, the rebuilds).
	Wait time.Duration
}

// RestoreClusterPlan is the check of a whole-cluster restore: the node
// that restores, the nodes rebuilt from it afterwards, and the arguments
// the restoring node runs its restore with.
type RestoreClusterPlan struct {
	Plan
	Node   string           `json:"node"`
	Others []string         `json:"rebuilt"`
	Target ha.RestoreTarget `json:"target"`
}

// PlanRestoreCluster validates the target and checks the cluster.
func (o *Ops) PlanRestoreCluster(ctx context.Context, req RestoreClusterRequest) (RestoreClusterPlan, error) {
	req.Target.Inclusive = !req.Exclusive
	// The target is checked here, before anything is requested.
	probe := restore.Options{TargetDir: "/check", Channels: 1, RestoreCommand: "check", Target: req.Target}
	if err := probe.Validate(); err != nil {
		return RestoreClusterPlan{}, badinput.Wrap(err)
	}
	t := req.Target
	target := ha.RestoreTarget{Time: t.Time, LSN: t.LSN, XID: t.XID, Name: t.Name, Immediate: t.Immediate, Exclusive: req.Exclusive, Backup: req.Backup}
	c, err := o.load(ctx)
	if err != nil {
		return RestoreClusterPlan{}, err
	}
	checks, node := ha.RestoreClusterChecks(c, req.Node)
	p := RestoreClusterPlan{Plan: newPlan("whole-cluster restore", checks), Node: node, Target: target}
	for _, n := range c.MemberNames() {
		if n != node {
			p.Others = append(p.Others, n)
		}
	}
	return p, nil
}

// RestoreCluster requests a whole-cluster restore and waits for the
// restoring node's outcome, then for every other node's rebuild. It
// returns the outcome the restoring node recorded.
func (o *Ops) RestoreCluster(ctx context.Context, req RestoreClusterRequest) (string, error) {
	p, err := o.PlanRestoreCluster(ctx, req)
	if err != nil {
		return "", err
	}
	if err := p.Refusal(); err != nil {
		return "", err
	}
	wait := req.Wait
	if wait <= 0 {
		wait = time.Hour
	}
	began := time.Now()
	r := ha.ClusterRestore{Node: p.Node, Target: p.Target, By: o.By, At: began.UTC()}
	cctx, cancel := o.call(ctx)
	err = o.Store.RequestClusterRestore(cctx, r)
	cancel()
	if err != nil {
		return "", err
	}
	_ = o.record(ctx, dcs.Event{Action: ha.EventClusterRestoreRequest, Target: p.Node, Reason: p.Target.String()})
	o.progress("whole-cluster restore requested on %s", p.Node)
	if err := o.WaitFor(ctx, wait, "restore of the primary "+p.Node, func(c ha.Cluster) bool { return c.Restore == nil }); err != nil {
		return "", err
	}
	// The agent records the outcome just after it ends the request;
	// agents' clocks may differ from ours by a little.
	result := ""
	for deadline := time.Now().Add(30 * time.Second); result == "" && time.Now().Before(deadline); {
		hctx, hcancel := o.call(ctx)
		events, err := o.Store.History(hctx, began.Add(-time.Minute))
		hcancel()
		if err == nil {
			for _, e := range events {
				if e.Node == p.Node && e.Action == ha.EventClusterRestore && e.Result != "started" && !e.Time.Before(r.At.Add(-time.Minute)) {
					result = e.Result + ": " + e.Reason
				}
			}
		}
		if result == "" {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(5 * o.poll()):
			}
		}
	}
	if !strings.HasPrefix(result, "ok") {
		if result == "" {
			result = "no result recorded (see 'pgguard ctl history')"
		}
		return result, fmt.Errorf("whole-cluster restore did not happen: %s", result)
	}
	o.progress("%s", result)
	return result, o.waitRebuilt(ctx, wait, "rebuild of "+strings.Join(p.Others, ", "), p.Node, p.Others...)
}

// AbortRestoreCluster withdraws a whole-cluster restore request that is
// stuck.
func (o *Ops) AbortRestoreCluster(ctx context.Context) error {
	cctx, cancel := o.call(ctx)
	defer cancel()
	if err := o.Store.CancelClusterRestore(cctx); err != nil {
		return err
	}
	return o.record(ctx, dcs.Event{Action: ha.EventClusterRestoreAbort})
}
