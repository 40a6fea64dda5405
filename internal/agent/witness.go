package agent

import (
	"context"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// runWitness is the agent of a witness (HA-18): its embedded etcd member
// votes, and it publishes a member record with the role "witness" at every
// heartbeat so that status shows it; it runs no PostgreSQL, takes no lease
// and is never a candidate. It registers itself in the store first, so
// that no database node counts it as a peer (no slot, no synchronous
// standby).
func (a *Agent) runWitness(ctx context.Context) error {
	a.log.Info("witness started", "cluster", a.cfg.Cluster, "node", a.cfg.Name)
	registered := false
	var publishedAt time.Time
	t := time.NewTicker(a.cfg.HA.LoopInterval.D())
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, a.storeTimeout())
		if !registered {
			if err := a.store.RegisterWitness(sctx); err == nil {
				registered = true
			} else {
				a.log.Warn("cannot register as a witness yet", "err", err)
			}
		}
		// The record never changes: it is written at every heartbeat,
		// which also renews its lease.
		if now := time.Now(); now.Sub(publishedAt) >= a.settings().Heartbeat() {
			m := ha.Member{Name: a.cfg.Name, Host: a.cfg.Postgres.ConnectAddress, Role: ha.RoleWitness, State: "witness", Healthy: true, UpdatedAt: now}
			if err := a.store.PublishMember(sctx, m); err != nil {
				a.log.Warn("cannot publish witness status", "err", err)
			} else {
				publishedAt = now
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			a.log.Info("witness stopping")
			return nil
		case <-t.C:
		}
	}
}
