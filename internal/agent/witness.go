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
	var published ha.Member
	var publishedAt, renewedAt time.Time
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
		// The record never changes: it is rewritten as ha.PublishDue
		// refreshes an unchanged record, and its lease renewed alone at
		// the other heartbeats.
		now := time.Now()
		m := ha.Member{Name: a.cfg.Name, Host: a.cfg.Postgres.ConnectAddress, Role: ha.RoleWitness, State: "witness", Healthy: true, UpdatedAt: now}
		o := ha.Observation{Now: now, Settings: a.settings(), Cluster: ha.Cluster{Leader: &ha.Leader{}}}
		if due, _ := ha.PublishDue(o, published, publishedAt, m); due {
			if err := a.store.PublishMember(sctx, m); err != nil {
				a.log.Warn("cannot publish witness status", "err", err)
			} else {
				published, publishedAt, renewedAt = m, now, now
			}
		} else if now.Sub(renewedAt) >= a.settings().Heartbeat() {
			if err := a.store.KeepMemberAlive(sctx); err != nil {
				a.log.Warn("cannot renew the witness's member lease", "err", err)
			} else {
				renewedAt = now
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
