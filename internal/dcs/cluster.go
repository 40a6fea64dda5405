package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pgguard/pgguard/internal/ha"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster's identity (the bootstrap) and its shared configuration.

// ClaimInit takes the bootstrap claim if nobody holds it and the cluster is
// not bootstrapped. The claim lives under the member lease, so a claimant
// that dies releases it.
func (s *Store) ClaimInit(ctx context.Context) (bool, error) {
	if err := s.ensureLease(ctx, &s.memberLease); err != nil {
		return false, err
	}
	s.mu.Lock()
	lease := s.memberLease
	s.mu.Unlock()
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(s.key("init-claim")), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.key("initialize")), "=", 0),
	).Then(clientv3.OpPut(s.key("init-claim"), s.name, clientv3.WithLease(lease))).Commit()
	if err != nil {
		return false, fmt.Errorf("claim bootstrap: %w", err)
	}
	return resp.Succeeded, nil
}

// FinishInit records the system identifier: the cluster now exists. Only
// the holder of the bootstrap claim writes it, and never over one already
// recorded.
func (s *Store) FinishInit(ctx context.Context, systemID string) error {
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("init-claim")), "=", s.name),
		clientv3.Compare(clientv3.CreateRevision(s.key("initialize")), "=", 0),
	).Then(
		clientv3.OpPut(s.key("initialize"), systemID),
		clientv3.OpDelete(s.key("init-claim")),
	).Commit()
	if err != nil {
		return fmt.Errorf("finish bootstrap: %w", err)
	}
	if !resp.Succeeded {
		return errors.New("finish bootstrap: the bootstrap claim is no longer ours")
	}
	return nil
}

// SeedConfig writes the cluster configuration if none exists yet.
func (s *Store) SeedConfig(ctx context.Context, cfg ha.ClusterConfig) error {
	data, _ := json.Marshal(cfg)
	k := s.key("config")
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(data))).Commit()
	return err
}

// UpdateConfig applies edit to the cluster configuration with a
// compare-and-swap on its revision, retrying when another writer won.
func (s *Store) UpdateConfig(ctx context.Context, edit func(*ha.ClusterConfig) error) (ha.ClusterConfig, error) {
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := s.cli.Get(ctx, s.key("config"))
		if err != nil {
			return ha.ClusterConfig{}, fmt.Errorf("read cluster config: %w", err)
		}
		cfg := ha.DefaultClusterConfig()
		var rev int64
		if len(resp.Kvs) > 0 {
			if err := json.Unmarshal(resp.Kvs[0].Value, &cfg); err != nil {
				return cfg, fmt.Errorf("cluster config in the store is unreadable: %w", err)
			}
			rev = resp.Kvs[0].ModRevision
		}
		if err := edit(&cfg); err != nil {
			return cfg, err
		}
		if err := cfg.Validate(); err != nil {
			return cfg, err
		}
		data, _ := json.Marshal(cfg)
		txn, err := s.cli.Txn(ctx).If(s.atRevision("config", rev)).
			Then(clientv3.OpPut(s.key("config"), string(data))).Commit()
		if err != nil {
			return cfg, fmt.Errorf("write cluster config: %w", err)
		}
		if txn.Succeeded {
			return cfg, nil
		}
	}
	return ha.ClusterConfig{}, errors.New("cluster config kept changing under us: try again")
}
