package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// PutUser stores a user; with create it fails with ErrExists when the
// name is taken.
func (s *Store) PutUser(ctx context.Context, u auth.User, create bool) error {
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	k := s.key("users", u.Name)
	if !create {
		_, err := s.cli.Put(ctx, k, string(data))
		return err
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("store user %s: %w", u.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("user %s: %w", u.Name, ErrExists)
	}
	return nil
}

// Users lists the API users by name.
func (s *Store) Users(ctx context.Context) ([]auth.User, error) {
	resp, err := s.cli.Get(ctx, s.key("users")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	var out []auth.User
	for _, kv := range resp.Kvs {
		var u auth.User
		if json.Unmarshal(kv.Value, &u) == nil {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteUser removes a user and reports whether there was one; the
// sessions it opened end at their next use.
func (s *Store) DeleteUser(ctx context.Context, name string) (bool, error) {
	resp, err := s.cli.Delete(ctx, s.key("users", name))
	if err != nil {
		return false, err
	}
	return resp.Deleted > 0, nil
}

// session is a console login: the user it is for, kept under the hash of
// its key, with an etcd lease that ends it.
type session struct {
	User string `json:"user"`
}

// OpenSession stores a session for user under keyHash for ttl.
func (s *Store) OpenSession(ctx context.Context, keyHash, user string, ttl time.Duration) error {
	g, err := s.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	data, _ := json.Marshal(session{User: user})
	if _, err := s.cli.Put(ctx, s.key("sessions", keyHash), string(data), clientv3.WithLease(g.ID)); err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	return nil
}

// Session returns the user of an open session ("" when there is none).
func (s *Store) Session(ctx context.Context, keyHash string) (string, error) {
	resp, err := s.cli.Get(ctx, s.key("sessions", keyHash))
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	var v session
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		return "", nil
	}
	return v.User, nil
}

// CloseSession ends a session.
func (s *Store) CloseSession(ctx context.Context, keyHash string) error {
	_, err := s.cli.Delete(ctx, s.key("sessions", keyHash))
	return err
}
