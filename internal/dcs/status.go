package dcs

import (
	"context"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
)

// StatusSource is what a status read needs of the store.
type StatusSource interface {
	Load(ctx context.Context) (ha.Cluster, error)
	LeaderLease(ctx context.Context) (time.Duration, error)
	Members(ctx context.Context) ([]StoreMember, error)
}

// ReadStatus builds a status report from a store; withStore also asks
// every etcd member for its own status (a connection to each).
func ReadStatus(ctx context.Context, store StatusSource, cluster string, withStore bool) (status.Report, error) {
	// The store's members first: a dead one costs a Status timeout, and
	// the cluster read after it is then the fresher of the two.
	var members []StoreMember
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
