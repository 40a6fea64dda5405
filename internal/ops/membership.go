package ops

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// voters reads the cluster and asks every store member whether it answers.
func (o *Ops) voters(ctx context.Context) (ha.Cluster, []ha.StoreVoter, error) {
	c, err := o.load(ctx)
	if err != nil {
		return c, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	members, err := o.Store.Members(cctx)
	if err != nil {
		return c, nil, err
	}
	var voters []ha.StoreVoter
	for _, m := range members {
		voters = append(voters, ha.StoreVoter{Name: m.Name, Reachable: m.Reachable})
	}
	return c, voters, nil
}

// PlanRemove checks decommissioning node for good.
func (o *Ops) PlanRemove(ctx context.Context, node string) (Plan, error) {
	c, v, err := o.voters(ctx)
	if err != nil {
		return Plan{}, err
	}
	return newPlan("removal of "+node, ha.RemoveChecks(c, node, v)), nil
}

// Remove decommissions node: its etcd member leaves the membership, it is
// marked removed (its slot and sync place go), its status and requests
// go. It returns what was done.
func (o *Ops) Remove(ctx context.Context, node string) (string, error) {
	p, err := o.PlanRemove(ctx, node)
	if err != nil {
		return "", err
	}
	if err := p.Refusal(); err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := o.Store.RemoveNode(cctx, node)
	if err != nil {
		return "", fmt.Errorf("removal of %s interrupted (run it again to finish): %w", node, err)
	}
	what := []string{"marked removed"}
	if res.StoreMemberID != "" {
		what = append(what, "etcd member "+res.StoreMemberID+" removed")
	}
	done := strings.Join(what, ", ")
	_ = o.record(ctx, dcs.Event{Action: ha.EventRemove, Target: node, Reason: "decommissioned by the operator", Result: "ok: " + done})
	return done, nil
}

// checkPeerURL refuses anything but an http(s) URL with a host and port.
func checkPeerURL(peerURL string) error {
	u, err := url.Parse(peerURL)
	if peerURL == "" || err != nil || u.Host == "" || u.Port() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return badInput("--peer-url %q: give the new node's etcd.embed.peer_url, e.g. https://10.0.0.14:2380", peerURL)
	}
	return nil
}

// PlanAdd checks adding node's etcd member at peerURL.
func (o *Ops) PlanAdd(ctx context.Context, node, peerURL string) (Plan, error) {
	if err := checkPeerURL(peerURL); err != nil {
		return Plan{}, err
	}
	c, v, err := o.voters(ctx)
	if err != nil {
		return Plan{}, err
	}
	return newPlan("addition of "+node, ha.AddChecks(c, node, v)), nil
}

// Add adds node's embedded etcd member to the store's membership, before
// its agent first starts; the result carries its initial_cluster.
func (o *Ops) Add(ctx context.Context, node, peerURL string) (dcs.AddResult, error) {
	p, err := o.PlanAdd(ctx, node, peerURL)
	if err != nil {
		return dcs.AddResult{}, err
	}
	if err := p.Refusal(); err != nil {
		return dcs.AddResult{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := o.Store.AddNode(cctx, node, peerURL)
	if err != nil {
		return res, err
	}
	_ = o.record(ctx, dcs.Event{Action: ha.EventAdd, Target: node, Reason: "etcd member at " + peerURL, Result: "ok: etcd member " + res.StoreMemberID})
	return res, nil
}
