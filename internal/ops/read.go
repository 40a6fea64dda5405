package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/explain"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
)

// Status builds the status report; withStore also asks every etcd member
// for its own status (a connection to each).
func (o *Ops) Status(ctx context.Context, withStore bool) (status.Report, error) {
	r, err := ReadStatus(ctx, o.Store, o.Cluster, withStore)
	if err != nil {
		return r, fmt.Errorf("status of cluster %s: %w", o.Cluster, err)
	}
	return r, nil
}

// StatusStore is what a status read needs of the store.
type StatusStore interface {
	Load(ctx context.Context) (ha.Cluster, error)
	LeaderLease(ctx context.Context) (time.Duration, error)
	Members(ctx context.Context) ([]dcs.StoreMember, error)
}

// ReadStatus builds a status report from a store (the demo's and the
// tests' status read, with no operator behind it).
func ReadStatus(ctx context.Context, store StatusStore, cluster string, withStore bool) (status.Report, error) {
	// The store's members first: a dead one costs a Status timeout, and
	// the cluster read after it is then the fresher of the two.
	var members []dcs.StoreMember
	if withStore {
		members, _ = store.Members(ctx)
	}
	c, err := store.Load(ctx)
	if err != nil {
		return status.Report{}, err
	}
	ttl, _ := store.LeaderLease(ctx)
	r := status.Build(cluster, c, ttl, time.Now())
	for _, m := range members {
		r.Store = append(r.Store, status.StoreMember{Name: m.Name, Reachable: m.Reachable, Leader: m.Leader, RaftIndex: m.RaftIndex, Error: m.Error})
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
