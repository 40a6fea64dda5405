package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/explain"
	"github.com/pgguard/pgguard/internal/status"
)

// Status builds the status report; withStore also asks every etcd member
// for its own status (a connection to each).
func (o *Ops) Status(ctx context.Context, withStore bool) (status.Report, error) {
	r, err := dcs.ReadStatus(ctx, o.Store, o.Cluster, withStore)
	if err != nil {
		return r, fmt.Errorf("status of cluster %s: %w", o.Cluster, err)
	}
	return r, nil
}

// History lists the cluster's history since a time (zero: all of it).
func (o *Ops) History(ctx context.Context, since time.Time) ([]dcs.Event, error) {
	events, err := o.Store.History(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("history of cluster %s: %w", o.Cluster, err)
	}
	return events, nil
}

// Explain finds one failover or switchover ("last" or an event id) as a
// single timeline across the nodes.
func (o *Ops) Explain(ctx context.Context, id string) (explain.Episode, error) {
	events, err := o.History(ctx, time.Time{})
	if err != nil {
		return explain.Episode{}, err
	}
	ep, err := explain.Find(events, id)
	if err != nil {
		return ep, badinput.Wrap(err)
	}
	return ep, nil
}
