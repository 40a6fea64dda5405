package dcs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/pgguard/pgguard/internal/ha"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The whole-cluster restore request, from the operator's request to the
// restored primary's hand-over to the members it rebuilds.

// RequestClusterRestore records a whole-cluster restore request unless
// one is already under way.
func (s *Store) RequestClusterRestore(ctx context.Context, r ha.ClusterRestore) error {
	return s.request(ctx, "request cluster restore", "restore", r,
		"another operation is under way (a whole-cluster restore, a switchover or a takeover): let it finish or cancel it first ('ctl restore-cluster --abort', 'ctl switchover --cancel')",
		s.absent("switchover"), s.absent("takeover"))
}

// ClearClusterRestore withdraws the restore request at revision rev
// (ha.ClusterRestore.Revision), the one the caller gave up on; a newer
// request stays, and ErrChanged says so.
func (s *Store) ClearClusterRestore(ctx context.Context, rev int64) error {
	return s.clear(ctx, "withdraw cluster restore request", "restore", rev)
}

// CancelClusterRestore withdraws any whole-cluster restore request,
// unconditionally: the operator's 'ctl restore-cluster --abort'.
func (s *Store) CancelClusterRestore(ctx context.Context) error {
	return s.cancel(ctx, "withdraw cluster restore request", "restore")
}

// ReserveRestoreTimeline claims timeline tli for the promotion that ends a
// whole-cluster restore, only while this node holds the leader key and the
// request is the one at revision restoreRev (not withdrawn meanwhile).
func (s *Store) ReserveRestoreTimeline(ctx context.Context, tli int, restoreRev int64) error {
	rev, err := s.timelineBelow(ctx, tli)
	if err != nil {
		return err
	}
	txn, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name),
		s.atRevision("restore", restoreRev),
		s.atRevision("timeline", rev),
	).Then(clientv3.OpPut(s.key("timeline"), strconv.Itoa(tli))).Commit()
	if err != nil {
		return fmt.Errorf("reserve timeline %d: %w", tli, err)
	}
	if !txn.Succeeded {
		return fmt.Errorf("reserve timeline %d: this node no longer holds the leader key, or the restore request was withdrawn or changed", tli)
	}
	return nil
}

// FinishClusterRestore ends the whole-cluster restore requested at
// revision restoreRev in one transaction, only while self holds the leader
// key: the request goes, so do any switchover or takeover request (made
// for the cluster before it was rolled back) and a rebuild request for
// self, and every member in rebuild gets a request to rebuild itself from
// backupID, so no member ever sees neither. A request withdrawn meanwhile
// does not stop it (past its timeline the restore finishes anyway); a
// newer request does (ErrChanged), and stays.
func (s *Store) FinishClusterRestore(ctx context.Context, self string, restoreRev int64, rebuild []string, backupID string) error {
	ops := []clientv3.Op{clientv3.OpDelete(s.key("restore")), clientv3.OpDelete(s.key("switchover")),
		clientv3.OpDelete(s.key("takeover")), clientv3.OpDelete(s.key("reinit", self))}
	for _, n := range rebuild {
		ops = append(ops, clientv3.OpPut(s.key("reinit", n), reinitValue(true, backupID)))
	}
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", s.name),
		s.unchangedSince("restore", restoreRev),
	).Then(ops...).Else(clientv3.OpGet(s.key("leader")), s.getRev("restore")).Commit()
	if err != nil {
		return fmt.Errorf("finish cluster restore: %w", err)
	}
	if !resp.Succeeded {
		if !holdsLeader(resp.Responses[0], s.name) {
			return fmt.Errorf("finish cluster restore: %w", ErrNotLeader)
		}
		return fmt.Errorf("finish cluster restore: %w", changed("restore", restoreRev, resp.Responses[1]))
	}
	return nil
}
