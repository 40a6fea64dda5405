package dcs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pgguard/pgguard/internal/ha"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// What each agent publishes about itself, under its own member lease.

// KeepMemberAlive refreshes the member lease (and so this agent's status
// and any bootstrap claim) without rewriting the status; the agent calls it
// during steps that take longer than a TTL (initdb, clone, rewind).
func (s *Store) KeepMemberAlive(ctx context.Context) error {
	s.mu.Lock()
	lease := s.memberLease
	s.mu.Unlock()
	if lease == 0 {
		return nil
	}
	_, err := s.cli.KeepAliveOnce(ctx, lease)
	return err
}

// PublishMember writes this agent's status under its member lease. The
// write is unconditional: only this agent writes its own record, and each
// record replaces the last observation whole.
func (s *Store) PublishMember(ctx context.Context, m ha.Member) error {
	if err := s.ensureLease(ctx, &s.memberLease); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	lease := s.memberLease
	s.mu.Unlock()
	_, err = s.cli.Put(ctx, s.key("members", s.name), string(data), clientv3.WithLease(lease))
	if err != nil {
		return fmt.Errorf("publish member: %w", err)
	}
	return nil
}

// RegisterWitness records, for good, that this member is a witness: it
// votes in the store and runs no PostgreSQL, so no agent counts it as a
// database peer (no slot, no synchronous standby, no candidate). Once
// recorded, the mark is left as it is.
func (s *Store) RegisterWitness(ctx context.Context) error {
	k := s.key("witness", s.name)
	if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, "1")).Commit(); err != nil {
		return fmt.Errorf("register witness: %w", err)
	}
	return nil
}
