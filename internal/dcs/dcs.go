// Package dcs owns pgguard's view of the consensus store: the keys under
// /pgguard/<cluster>/, the leases that bind a member's status and the leader
// key to a live agent, and the transactions that make elections safe.
//
// It never decides anything: it reads the cluster into an ha.Cluster and
// performs the writes the agent asks for, each one a compare-and-swap where
// a race is possible. The same code serves an embedded etcd member and an
// external etcd cluster.
package dcs

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrNotLeader means the leader key is not (or no longer) ours.
var ErrNotLeader = errors.New("leader key is not held by this node")

// Event is one entry of the cluster history. Action is a step kind or an
// Event kind of package ha; on the wire it is the plain string.
type Event struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	Action ha.Kind   `json:"action"`
	Target string    `json:"target,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Result string    `json:"result,omitempty"`
	By     string    `json:"by,omitempty"`
	Key    string    `json:"-"`
}

// Store is the cluster store for one agent (or one ctl invocation).
type Store struct {
	cli    *clientv3.Client
	prefix string
	name   string
	ttl    int64

	tls         *tls.Config // nil: plaintext
	dialTimeout time.Duration

	mu          sync.Mutex
	memberLease clientv3.LeaseID
	leaderLease clientv3.LeaseID
}

// Options configure a Store.
type Options struct {
	Endpoints   []string
	DialTimeout time.Duration
	Cluster     string
	Node        string        // this agent's name ("" for ctl)
	TTL         time.Duration // lease TTL for member and leader keys
	// TLS is the client configuration for https endpoints (nil for
	// plaintext ones).
	TLS *tls.Config
}

// Open connects to etcd. It does not wait for the cluster to be healthy.
func Open(o Options) (*Store, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            o.Endpoints,
		DialTimeout:          o.DialTimeout,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		TLS:                  o.TLS,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	ttl := int64(o.TTL / time.Second)
	if ttl < 2 {
		ttl = 2
	}
	return &Store{cli: cli, prefix: "/pgguard/" + o.Cluster + "/", name: o.Node, ttl: ttl, tls: o.TLS, dialTimeout: o.DialTimeout}, nil
}

// Close releases the connection (leases expire by themselves).
func (s *Store) Close() error { return s.cli.Close() }

// Client exposes the etcd client for maintenance calls (leader moves).
func (s *Store) Client() *clientv3.Client { return s.cli }

func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, "/") }

// LeaderLease returns the remaining TTL of the leader key's lease (for
// status displays), or 0 when there is no leader.
func (s *Store) LeaderLease(ctx context.Context) (time.Duration, error) {
	resp, err := s.cli.Get(ctx, s.key("leader"))
	if err != nil || len(resp.Kvs) == 0 {
		return 0, err
	}
	ttl, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		return 0, err
	}
	return time.Duration(ttl.TTL) * time.Second, nil
}

// ensureLease refreshes *id or grants a new lease when it is missing or
// expired.
func (s *Store) ensureLease(ctx context.Context, id *clientv3.LeaseID) error {
	s.mu.Lock()
	cur := *id
	s.mu.Unlock()
	if cur != 0 {
		_, err := s.cli.KeepAliveOnce(ctx, cur)
		if err == nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("refresh lease: %w", err)
		}
	}
	g, err := s.cli.Grant(ctx, s.ttl)
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	s.mu.Lock()
	*id = g.ID
	s.mu.Unlock()
	return nil
}

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

// PublishMember writes this agent's status under its member lease.
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

// SetReplay records an operator's replay request for node (ctl replay).
func (s *Store) SetReplay(ctx context.Context, node string, req ha.ReplayRequest) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.key("replay", node), string(data)); err != nil {
		return fmt.Errorf("record replay request: %w", err)
	}
	return nil
}

// ClearReplay withdraws node's replay request (ctl replay --cancel).
func (s *Store) ClearReplay(ctx context.Context, node string) error {
	if _, err := s.cli.Delete(ctx, s.key("replay", node)); err != nil {
		return fmt.Errorf("withdraw replay request: %w", err)
	}
	return nil
}

// RegisterWitness records, for good, that this member is a witness: it
// votes in the store and runs no PostgreSQL, so no agent counts it as a
// database peer (no slot, no synchronous standby, no candidate).
func (s *Store) RegisterWitness(ctx context.Context) error {
	if _, err := s.cli.Put(ctx, s.key("witness", s.name), "1"); err != nil {
		return fmt.Errorf("register witness: %w", err)
	}
	return nil
}

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

// FinishInit records the system identifier: the cluster now exists.
func (s *Store) FinishInit(ctx context.Context, systemID string) error {
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("init-claim")), "=", s.name),
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

// AcquireLeader takes the leader key in a transaction: when it is absent,
// or when it carries our own name from an earlier run of this agent. It
// returns when the lease behind the key was last refreshed.
func (s *Store) AcquireLeader(ctx context.Context) (bool, time.Time, error) {
	sent := time.Now()
	if err := s.ensureLease(ctx, &s.leaderLease); err != nil {
		return false, time.Time{}, err
	}
	s.mu.Lock()
	lease := s.leaderLease
	s.mu.Unlock()
	k := s.key("leader")
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, s.name, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("acquire leader key: %w", err)
	}
	if resp.Succeeded {
		return true, sent, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 || string(kvs[0].Value) != s.name {
		return false, time.Time{}, nil
	}
	if clientv3.LeaseID(kvs[0].Lease) == lease {
		return true, sent, nil
	}
	resp, err = s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(k), "=", s.name),
		clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision),
	).Then(clientv3.OpPut(k, s.name, clientv3.WithLease(lease))).Commit()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("take over own leader key: %w", err)
	}
	return resp.Succeeded, sent, nil
}

// RenewLeader refreshes the leader lease, checks the key is still ours and
// records the primary's WAL position. It returns the instant the renewal
// was sent: the lease is valid for at least ttl from then.
func (s *Store) RenewLeader(ctx context.Context, optime lsn.LSN) (time.Time, error) {
	sent := time.Now()
	s.mu.Lock()
	lease := s.leaderLease
	s.mu.Unlock()
	if lease == 0 {
		return time.Time{}, ErrNotLeader
	}
	if _, err := s.cli.KeepAliveOnce(ctx, lease); err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return time.Time{}, fmt.Errorf("leader lease expired: %w", ErrNotLeader)
		}
		return time.Time{}, fmt.Errorf("renew leader lease: %w", err)
	}
	k := s.key("leader")
	var then []clientv3.Op
	if optime > 0 {
		then = append(then, clientv3.OpPut(s.key("optime"), optime.String()))
	}
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(k), "=", s.name),
		clientv3.Compare(clientv3.LeaseValue(k), "=", lease),
	).Then(then...).Commit()
	if err != nil {
		return time.Time{}, fmt.Errorf("renew leader key: %w", err)
	}
	if !resp.Succeeded {
		return time.Time{}, ErrNotLeader
	}
	return sent, nil
}

// ReleaseLeader deletes the leader key if it is ours and revokes its lease.
func (s *Store) ReleaseLeader(ctx context.Context) error {
	k := s.key("leader")
	if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", s.name)).
		Then(clientv3.OpDelete(k)).Commit(); err != nil {
		return fmt.Errorf("release leader key: %w", err)
	}
	s.mu.Lock()
	lease := s.leaderLease
	s.leaderLease = 0
	s.mu.Unlock()
	if lease != 0 {
		_, _ = s.cli.Revoke(ctx, lease)
	}
	return nil
}

// SetSync writes the sync key, only while this node holds the leader key.
func (s *Store) SetSync(ctx context.Context, st ha.SyncState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name)).
		Then(clientv3.OpPut(s.key("sync"), string(data))).Commit()
	if err != nil {
		return fmt.Errorf("write sync key: %w", err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
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
		k := s.key("config")
		txn, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
			Then(clientv3.OpPut(k, string(data))).Commit()
		if err != nil {
			return cfg, fmt.Errorf("write cluster config: %w", err)
		}
		if txn.Succeeded {
			return cfg, nil
		}
	}
	return ha.ClusterConfig{}, errors.New("cluster config kept changing under us: try again")
}

// RequestSwitchover records a switchover request, only if from still
// leads and no other request exists.
func (s *Store) RequestSwitchover(ctx context.Context, sw ha.Switchover) error {
	data, _ := json.Marshal(sw)
	k := s.key("switchover")
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", sw.From),
		clientv3.Compare(clientv3.CreateRevision(k), "=", 0),
	).Then(clientv3.OpPut(k, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("request switchover: %w", err)
	}
	if !resp.Succeeded {
		return errors.New("request switchover: the leader changed or another switchover is under way")
	}
	return nil
}

// ClearSwitchover removes any switchover request.
func (s *Store) ClearSwitchover(ctx context.Context) error {
	_, err := s.cli.Delete(ctx, s.key("switchover"))
	return err
}

// ReserveTimeline records tli as the highest timeline used, only while
// this node holds the leader key and only if it is higher than the one
// recorded (a compare on the revision read).
func (s *Store) ReserveTimeline(ctx context.Context, tli int) error {
	k := s.key("timeline")
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return fmt.Errorf("read reserved timeline: %w", err)
	}
	var rev int64
	if len(resp.Kvs) > 0 {
		cur, _ := strconv.Atoi(string(resp.Kvs[0].Value))
		if cur >= tli {
			return fmt.Errorf("timeline %d is already reserved (highest %d)", tli, cur)
		}
		rev = resp.Kvs[0].ModRevision
	}
	txn, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name),
		clientv3.Compare(clientv3.ModRevision(k), "=", rev),
	).Then(clientv3.OpPut(k, strconv.Itoa(tli))).Commit()
	if err != nil {
		return fmt.Errorf("reserve timeline %d: %w", tli, err)
	}
	if !txn.Succeeded {
		return fmt.Errorf("reserve timeline %d: %w or another reservation won", tli, ErrNotLeader)
	}
	return nil
}

// RequestTakeover records a manual failover request, only while no node
// holds the leader key.
func (s *Store) RequestTakeover(ctx context.Context, tk ha.Takeover) error {
	data, _ := json.Marshal(tk)
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(s.key("leader")), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.key("takeover")), "=", 0),
	).Then(clientv3.OpPut(s.key("takeover"), string(data))).Commit()
	if err != nil {
		return fmt.Errorf("request takeover: %w", err)
	}
	if !resp.Succeeded {
		return errors.New("request takeover: a node took the leader key meanwhile, or another takeover is under way")
	}
	return nil
}

// ClearTakeover removes the takeover request.
func (s *Store) ClearTakeover(ctx context.Context) error {
	_, err := s.cli.Delete(ctx, s.key("takeover"))
	return err
}

// reinitRequest is the value of a reinit/<node> key.
type reinitRequest struct {
	At         time.Time `json:"at"`
	FromBackup bool      `json:"from_backup,omitempty"`
	BackupID   string    `json:"backup_id,omitempty"` // "" = the newest
}

func reinitValue(fromBackup bool, backupID string) string {
	data, _ := json.Marshal(reinitRequest{At: time.Now().UTC(), FromBackup: fromBackup, BackupID: backupID})
	return string(data)
}

// RequestReinit asks node's agent to rebuild its data directory, from a
// base backup of the primary or, with fromBackup, from the newest backup in
// its repository; ClearReinit withdraws the request (the agent does when
// done).
func (s *Store) RequestReinit(ctx context.Context, node string, fromBackup bool) error {
	_, err := s.cli.Put(ctx, s.key("reinit", node), reinitValue(fromBackup, ""))
	return err
}

// RequestClusterRestore records a whole-cluster restore request unless
// one is already under way.
func (s *Store) RequestClusterRestore(ctx context.Context, r ha.ClusterRestore) error {
	data, _ := json.Marshal(r)
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(s.key("restore")), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.key("switchover")), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.key("takeover")), "=", 0),
	).Then(clientv3.OpPut(s.key("restore"), string(data))).Commit()
	if err != nil {
		return fmt.Errorf("request cluster restore: %w", err)
	}
	if !resp.Succeeded {
		return errors.New("another operation is under way (a whole-cluster restore, a switchover or a takeover): let it finish or cancel it first ('ctl restore-cluster --abort', 'ctl switchover --cancel')")
	}
	return nil
}

// ReserveRestoreTimeline claims timeline tli for the promotion that ends a
// whole-cluster restore, only while this node holds the leader key and the
// request is the one at revision restoreRev (not withdrawn meanwhile).
func (s *Store) ReserveRestoreTimeline(ctx context.Context, tli int, restoreRev int64) error {
	k := s.key("timeline")
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return fmt.Errorf("read reserved timeline: %w", err)
	}
	var rev int64
	if len(resp.Kvs) > 0 {
		if cur, _ := strconv.Atoi(string(resp.Kvs[0].Value)); cur >= tli {
			return fmt.Errorf("timeline %d is already reserved (highest %d)", tli, cur)
		}
		rev = resp.Kvs[0].ModRevision
	}
	txn, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name),
		clientv3.Compare(clientv3.ModRevision(s.key("restore")), "=", restoreRev),
		clientv3.Compare(clientv3.ModRevision(k), "=", rev),
	).Then(clientv3.OpPut(k, strconv.Itoa(tli))).Commit()
	if err != nil {
		return fmt.Errorf("reserve timeline %d: %w", tli, err)
	}
	if !txn.Succeeded {
		return fmt.Errorf("reserve timeline %d: this node no longer holds the leader key, or the restore request was withdrawn or changed", tli)
	}
	return nil
}

// FinishClusterRestore ends a whole-cluster restore in one transaction,
// only while self holds the leader key: the request goes, so do any
// switchover or takeover request and a rebuild request for self, and every
// member in rebuild gets a request to rebuild itself from backupID, so no
// member ever sees neither.
func (s *Store) FinishClusterRestore(ctx context.Context, self string, rebuild []string, backupID string) error {
	ops := []clientv3.Op{clientv3.OpDelete(s.key("restore")), clientv3.OpDelete(s.key("switchover")),
		clientv3.OpDelete(s.key("takeover")), clientv3.OpDelete(s.key("reinit", self))}
	for _, n := range rebuild {
		ops = append(ops, clientv3.OpPut(s.key("reinit", n), reinitValue(true, backupID)))
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("finish cluster restore: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("finish cluster restore: %w", ErrNotLeader)
	}
	return nil
}

// AbortClusterRestore withdraws a whole-cluster restore request.
func (s *Store) AbortClusterRestore(ctx context.Context) error {
	_, err := s.cli.Delete(ctx, s.key("restore"))
	return err
}

func (s *Store) ClearReinit(ctx context.Context, node string) error {
	_, err := s.cli.Delete(ctx, s.key("reinit", node))
	return err
}

// SeedConfig writes the cluster configuration if none exists yet.
func (s *Store) SeedConfig(ctx context.Context, cfg ha.ClusterConfig) error {
	data, _ := json.Marshal(cfg)
	k := s.key("config")
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(data))).Commit()
	return err
}

// AppendHistory records one event. Keys sort by time, then node.
func (s *Store) AppendHistory(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	k := s.key("history", fmt.Sprintf("%020d-%s", e.Time.UnixNano(), e.Node))
	if _, err := s.cli.Put(ctx, k, string(data)); err != nil {
		return fmt.Errorf("record history: %w", err)
	}
	return nil
}

// History returns the events at or after since, oldest first.
func (s *Store) History(ctx context.Context, since time.Time) ([]Event, error) {
	from := s.key("history", fmt.Sprintf("%020d", since.UnixNano()))
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.key("history")+"/")))
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out := make([]Event, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e Event
		if json.Unmarshal(kv.Value, &e) == nil {
			e.Key = string(kv.Key)
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
