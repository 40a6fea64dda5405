package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Operators' requests (switchover, takeover, rebuild, replay) and their
// ends. A front end writes a request after its checks passed on a read of
// the cluster; the agent that carries it out clears it. Both compare the
// key with the revision they read, so that neither wipes a request newer
// than the one it decided on. Cancel* withdraw whatever is there: the
// operator's explicit cancel.

// clear deletes the key rel unless it was written after revision read;
// otherwise it fails with a *ChangedError and the newer value stays.
func (s *Store) clear(ctx context.Context, what, rel string, read int64) error {
	resp, err := s.cli.Txn(ctx).If(s.unchangedSince(rel, read)).
		Then(clientv3.OpDelete(s.key(rel))).Else(s.getRev(rel)).Commit()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: %w", what, changed(rel, read, resp.Responses[0]))
	}
	return nil
}

// cancel deletes the key rel whatever it holds.
func (s *Store) cancel(ctx context.Context, what, rel string) error {
	if _, err := s.cli.Delete(ctx, s.key(rel)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// request writes an operator's request, v as JSON, to the key rel, only
// if rel does not exist and every condition in when holds; what names the
// request in errors, and refused is the error when a condition failed.
func (s *Store) request(ctx context.Context, what, rel string, v any, refused string, when ...clientv3.Cmp) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	resp, err := s.cli.Txn(ctx).If(append(when, s.absent(rel))...).
		Then(clientv3.OpPut(s.key(rel), string(data))).Commit()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !resp.Succeeded {
		return errors.New(refused)
	}
	return nil
}

// absent holds while the key rel does not exist.
func (s *Store) absent(rel string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.key(rel)), "=", 0)
}

// RequestSwitchover records a switchover request, only if from still
// leads and no other request exists.
func (s *Store) RequestSwitchover(ctx context.Context, sw ha.Switchover) error {
	return s.request(ctx, "request switchover", "switchover", sw,
		"request switchover: the leader changed or another switchover is under way",
		clientv3.Compare(clientv3.Value(s.key("leader")), "=", sw.From))
}

// ClearSwitchover removes the switchover request seen by a read at
// revision read (ha.Cluster.Revision): a request written after it (the
// operator cancelled and asked again) stays, and ErrChanged says so.
func (s *Store) ClearSwitchover(ctx context.Context, read int64) error {
	return s.clear(ctx, "clear switchover request", "switchover", read)
}

// CancelSwitchover withdraws any switchover request, unconditionally: the
// operator's 'ctl switchover --cancel', which means whatever is there.
func (s *Store) CancelSwitchover(ctx context.Context) error {
	return s.cancel(ctx, "cancel switchover request", "switchover")
}

// RequestTakeover records a manual failover request, only while no node
// holds the leader key.
func (s *Store) RequestTakeover(ctx context.Context, tk ha.Takeover) error {
	return s.request(ctx, "request takeover", "takeover", tk,
		"request takeover: a node took the leader key meanwhile, or another takeover is under way",
		s.absent("leader"))
}

// ClearTakeover removes the takeover request seen by a read at revision
// read, unless a newer one replaced it (ErrChanged).
func (s *Store) ClearTakeover(ctx context.Context, read int64) error {
	return s.clear(ctx, "clear takeover request", "takeover", read)
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
// its repository. read is the revision of the read the operator's checks
// ran on: a request for node written or cleared after it makes the call
// fail with ErrChanged rather than replace it.
func (s *Store) RequestReinit(ctx context.Context, node string, fromBackup bool, read int64) error {
	rel := "reinit/" + node
	resp, err := s.cli.Txn(ctx).If(s.unchangedSince(rel, read)).
		Then(clientv3.OpPut(s.key(rel), reinitValue(fromBackup, ""))).Else(s.getRev(rel)).Commit()
	if err != nil {
		return fmt.Errorf("request rebuild of %s: %w", node, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("request rebuild of %s: %w", node, changed(rel, read, resp.Responses[0]))
	}
	return nil
}

// ClearReinit withdraws node's rebuild request seen by a read at revision
// read (its agent does, once rebuilt), unless a newer one replaced it
// (ErrChanged): the operator asked again meanwhile.
func (s *Store) ClearReinit(ctx context.Context, node string, read int64) error {
	return s.clear(ctx, "clear rebuild request of "+node, "reinit/"+node, read)
}

// SetReplay records an operator's replay request for node (ctl replay).
// It replaces any earlier one unconditionally: only operators write these
// keys, and each command states the whole replay state wanted, so the
// latest command is the one meant.
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

// CancelReplay withdraws node's replay request, unconditionally (ctl
// replay --cancel).
func (s *Store) CancelReplay(ctx context.Context, node string) error {
	return s.cancel(ctx, "withdraw replay request", "replay/"+node)
}
