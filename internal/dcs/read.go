package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// bulkDirs hold what no HA decision reads and what grows without bound:
// the history, job definitions and their runs (with logs). Load and Watch
// leave them out.
var bulkDirs = []string{"history/", "jobs/", "runs/"}

// transient are the errors an etcd member returns while its cluster elects
// a leader: a read made again a moment later answers.
var transient = []error{rpctypes.ErrLeaderChanged, rpctypes.ErrNoLeader, rpctypes.ErrTimeoutDueToLeaderFail}

// readTxn commits a transaction of reads only, made again while the store
// elects a leader (the client retries a Get by itself but not a Txn, which
// it cannot tell from a write), until ctx ends or for at most 3 s.
func readTxn(ctx context.Context, cli *clientv3.Client, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	give := time.Now().Add(3 * time.Second)
	wait := 20 * time.Millisecond
	for {
		resp, err := cli.Txn(ctx).Then(ops...).Commit()
		if err == nil || !slices.ContainsFunc(transient, func(t error) bool { return errors.Is(err, t) }) ||
			time.Now().Add(wait).After(give) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// Load reads the cluster's state in one linearizable transaction (one
// revision): every key under the prefix except the bulk directories.
func (s *Store) Load(ctx context.Context) (ha.Cluster, error) { return s.load(ctx, false) }

// LoadLocal reads the same as Load from the member the client is
// connected to, without a round to the raft leader: the member's applied
// state, which may lag the cluster (and does not fail when the member has
// lost its quorum). The agent uses it only where ha.Quiet allows.
func (s *Store) LoadLocal(ctx context.Context) (ha.Cluster, error) { return s.load(ctx, true) }

func (s *Store) load(ctx context.Context, serializable bool) (ha.Cluster, error) {
	var ops []clientv3.Op
	from := s.prefix
	get := func(from, to string) clientv3.Op {
		if serializable {
			return clientv3.OpGet(from, clientv3.WithRange(to), clientv3.WithSerializable())
		}
		return clientv3.OpGet(from, clientv3.WithRange(to))
	}
	for _, dir := range bulkDirs { // sorted, so the ranges are in order
		ops = append(ops, get(from, s.prefix+dir))
		from = clientv3.GetPrefixRangeEnd(s.prefix + dir)
	}
	ops = append(ops, get(from, clientv3.GetPrefixRangeEnd(s.prefix)))
	tresp, err := readTxn(ctx, s.cli, ops)
	if err != nil {
		return ha.Cluster{}, fmt.Errorf("read cluster: %w", err)
	}
	c := ha.Cluster{Members: map[string]ha.Member{}, Revision: tresp.Header.Revision, Config: ha.DefaultClusterConfig()}
	var kvs []*mvccpb.KeyValue
	for _, r := range tresp.Responses {
		kvs = append(kvs, r.GetResponseRange().Kvs...)
	}
	var handOver handOverRecord
	for _, kv := range kvs {
		k := strings.TrimPrefix(string(kv.Key), s.prefix)
		switch {
		case k == "initialize":
			c.SystemID = string(kv.Value)
		case k == "init-claim":
			c.InitClaim = string(kv.Value)
		case k == "leader":
			c.Leader = &ha.Leader{Name: string(kv.Value), Revision: kv.ModRevision}
		case k == "optime":
			c.Optime, _ = lsn.Parse(string(kv.Value))
		case k == "config":
			cfg := ha.DefaultClusterConfig()
			if json.Unmarshal(kv.Value, &cfg) == nil {
				cfg.Revision = kv.ModRevision
				c.Config = cfg
			}
		case k == "timeline":
			c.MaxTimeline, _ = strconv.Atoi(string(kv.Value))
		case k == "takeover":
			var tk ha.Takeover
			if json.Unmarshal(kv.Value, &tk) == nil {
				c.Takeover = &tk
			}
		case strings.HasPrefix(k, "reinit/"):
			if c.Reinit == nil {
				c.Reinit = map[string]bool{}
			}
			node := strings.TrimPrefix(k, "reinit/")
			c.Reinit[node] = true
			var req reinitRequest
			if json.Unmarshal(kv.Value, &req) == nil && req.FromBackup {
				if c.ReinitFromBackup == nil {
					c.ReinitFromBackup = map[string]string{}
				}
				c.ReinitFromBackup[node] = req.BackupID
			}
		case k == "restore":
			var r ha.ClusterRestore
			if json.Unmarshal(kv.Value, &r) == nil {
				r.Revision = kv.ModRevision
				c.Restore = &r
			}
		case k == "switchover":
			var sw ha.Switchover
			if json.Unmarshal(kv.Value, &sw) == nil {
				sw.Revision = kv.CreateRevision
				c.Switchover = &sw
			}
		case k == "handover":
			_ = json.Unmarshal(kv.Value, &handOver)
		case k == "sync":
			var st ha.SyncState
			if json.Unmarshal(kv.Value, &st) == nil {
				st.Revision = kv.ModRevision
				c.Sync = &st
			}
		case strings.HasPrefix(k, "replay/"):
			var req ha.ReplayRequest
			if json.Unmarshal(kv.Value, &req) == nil {
				if c.Replay == nil {
					c.Replay = map[string]ha.ReplayRequest{}
				}
				c.Replay[strings.TrimPrefix(k, "replay/")] = req
			}
		case strings.HasPrefix(k, "witness/"):
			c.Witnesses = append(c.Witnesses, strings.TrimPrefix(k, "witness/"))
		case strings.HasPrefix(k, "members/"):
			var m ha.Member
			if json.Unmarshal(kv.Value, &m) == nil {
				m.Revision = kv.ModRevision
				c.Members[m.Name] = m
			}
		}
	}
	if sw := c.Switchover; sw != nil && handOver.Switchover == sw.Revision && handOver.To == sw.To {
		sw.HandedOver = handOver.Checkpoint
	}
	return c, nil
}

func (s *Store) isBulk(key string) bool {
	for _, dir := range bulkDirs {
		if strings.HasPrefix(key, s.prefix+dir) {
			return true
		}
	}
	return false
}

// What a change of a key wakes in Watch.
const (
	wakesNothing = iota
	wakesState
	wakesMembers
)

// wakes says which of Watch's channels a change of key signals. The
// optime moves with writes and no decision waits for it: it is read at the
// next loop, as are the bulk directories.
func (s *Store) wakes(key string) int {
	switch {
	case s.isBulk(key), key == s.prefix+"optime":
		return wakesNothing
	case strings.HasPrefix(key, s.prefix+"members/"):
		return wakesMembers
	default:
		return wakesState
	}
}

// Watch signals, until ctx ends, on state whenever a key an HA decision
// reads changes (the leader key, the sync key, a request, the
// configuration) and on members whenever only member records changed
// (agents republish theirs at every change and heartbeat, so the caller
// listens to them only when it matters, during an election). History,
// jobs, runs and the optime signal nothing. Signals coalesce.
func (s *Store) Watch(ctx context.Context) (state, members <-chan struct{}) {
	stateCh, membersCh := make(chan struct{}, 1), make(chan struct{}, 1)
	signal := func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		for ctx.Err() == nil {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for resp := range s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix()) {
				if resp.Err() != nil {
					break
				}
				for _, ev := range resp.Events {
					switch s.wakes(string(ev.Kv.Key)) {
					case wakesMembers:
						signal(membersCh)
					case wakesState:
						signal(stateCh)
					}
				}
			}
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return stateCh, membersCh
}
