package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/lsn"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The leader key and what only its holder writes: the optime, the sync key
// and the timeline reservation.

// LeaderLease returns the TTL the leader key's lease was granted with (the
// agents' ttl), or 0 when there is no leader. Status judges by it how old
// a live member's record may grow (ha.MemberRecordMaxAge); the time left
// on the lease, which it once returned, varies from one read to the next
// and made idle standbys look unreachable.
func (s *Store) LeaderLease(ctx context.Context) (time.Duration, error) {
	resp, err := s.cli.Get(ctx, s.key("leader"))
	if err != nil || len(resp.Kvs) == 0 {
		return 0, err
	}
	ttl, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		return 0, err
	}
	return time.Duration(ttl.GrantedTTL) * time.Second, nil
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
	return s.release(ctx)
}

// handOverRecord is the "handover" key: the switchover request (by its
// creating revision) whose candidate the releasing primary saw receive
// its shutdown checkpoint.
type handOverRecord struct {
	Switchover int64   `json:"switchover"`
	To         string  `json:"to"`
	Checkpoint lsn.LSN `json:"checkpoint"`
}

// HandOverLeader releases the leader key for the switchover sw, recording
// in the same transaction that its candidate received the shutdown
// checkpoint (Load shows it as sw.HandedOver). A record left from an
// earlier request names that request's revision and is ignored.
func (s *Store) HandOverLeader(ctx context.Context, sw ha.Switchover, checkpoint lsn.LSN) error {
	data, err := json.Marshal(handOverRecord{Switchover: sw.Revision, To: sw.To, Checkpoint: checkpoint})
	if err != nil {
		return err
	}
	return s.release(ctx, clientv3.OpPut(s.key("handover"), string(data)))
}

func (s *Store) release(ctx context.Context, also ...clientv3.Op) error {
	k := s.key("leader")
	if _, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", s.name)).
		Then(append([]clientv3.Op{clientv3.OpDelete(k)}, also...)...).Commit(); err != nil {
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

// SetSync replaces the sync key with st, only while this node holds the
// leader key and the key is still prev, the record the caller's decision
// read (nil: there was none). The primary widens the key before it widens
// synchronous_standby_names and narrows it only after; a change computed
// from a record that changed meanwhile could leave out a standby holding
// acknowledged commits, so it fails with ErrChanged instead.
func (s *Store) SetSync(ctx context.Context, prev *ha.SyncState, st ha.SyncState) error {
	var rev int64
	if prev != nil {
		rev = prev.Revision
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name),
		s.atRevision("sync", rev),
	).Then(clientv3.OpPut(s.key("sync"), string(data))).
		Else(clientv3.OpGet(s.key("leader")), s.getRev("sync")).Commit()
	if err != nil {
		return fmt.Errorf("write sync key: %w", err)
	}
	if !resp.Succeeded {
		if !holdsLeader(resp.Responses[0], s.name) {
			return ErrNotLeader
		}
		return fmt.Errorf("write sync key: %w", changed("sync", rev, resp.Responses[1]))
	}
	return nil
}

// ReserveTimeline records tli as the highest timeline used, only while
// this node holds the leader key and only if it is higher than the one
// recorded (a compare on the revision read).
func (s *Store) ReserveTimeline(ctx context.Context, tli int) error {
	rev, err := s.timelineBelow(ctx, tli)
	if err != nil {
		return err
	}
	txn, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name),
		s.atRevision("timeline", rev),
	).Then(clientv3.OpPut(s.key("timeline"), strconv.Itoa(tli))).Commit()
	if err != nil {
		return fmt.Errorf("reserve timeline %d: %w", tli, err)
	}
	if !txn.Succeeded {
		return fmt.Errorf("reserve timeline %d: %w or another reservation won", tli, ErrNotLeader)
	}
	return nil
}

// timelineBelow reads the reserved timeline and returns its revision (0:
// none yet), failing when it is not below tli.
func (s *Store) timelineBelow(ctx context.Context, tli int) (int64, error) {
	resp, err := s.cli.Get(ctx, s.key("timeline"))
	if err != nil {
		return 0, fmt.Errorf("read reserved timeline: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	if cur, _ := strconv.Atoi(string(resp.Kvs[0].Value)); cur >= tli {
		return 0, fmt.Errorf("timeline %d is already reserved (highest %d)", tli, cur)
	}
	return resp.Kvs[0].ModRevision, nil
}
