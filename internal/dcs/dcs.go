// Package dcs owns pgguard's view of the consensus store: the keys under
// /pgguard/<cluster>/, the leases that bind a member's status and the leader
// key to a live agent, and the transactions that make elections safe.
//
// It never decides anything: it reads the cluster into an ha.Cluster and
// performs the writes the agent asks for. Every write that replaces or
// clears shared state is a compare-and-swap on the revision its caller
// read, and fails with ErrChanged when someone wrote the key meanwhile; the
// few unconditional writes say so in their name (Cancel*) or their comment.
// The same code serves an embedded etcd member and an external etcd
// cluster.
package dcs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrNotLeader means the leader key is not (or no longer) ours.
var ErrNotLeader = errors.New("leader key is not held by this node")

// ErrChanged means a key was written after the revision the caller read:
// the write that rested on that read was not made. The caller reads again
// and decides again. Errors that wrap it are *ChangedError.
var ErrChanged = errors.New("changed since it was read")

// ChangedError says which key changed under a compare-and-swap.
type ChangedError struct {
	// Key is the key under the cluster prefix: "switchover", "sync",
	// "reinit/b", "jobs/nightly".
	Key string
	// Read is the revision the caller's write rested on.
	Read int64
	// Now is the key's last write now; 0 when it is gone.
	Now int64
}

func (e *ChangedError) Error() string {
	if e.Now == 0 {
		return fmt.Sprintf("%s %s (deleted after revision %d): read it again and retry", e.Key, ErrChanged, e.Read)
	}
	return fmt.Sprintf("%s %s (written at revision %d, after revision %d): read it again and retry", e.Key, ErrChanged, e.Now, e.Read)
}

// Unwrap makes errors.Is(err, ErrChanged) hold.
func (e *ChangedError) Unwrap() error { return ErrChanged }

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

// unchangedSince holds while the key rel (under the prefix) has not been
// written after revision read: its last write is at most read, or it is
// gone. read is the key's own ModRevision or the revision of a whole read
// that saw it (ha.Cluster.Revision); 0 holds only for an absent key. A
// key deleted meanwhile passes: clearing it again changes nothing.
func (s *Store) unchangedSince(rel string, read int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(s.key(rel)), "<", read+1)
}

// atRevision holds while the key rel was last written at rev exactly (0:
// it is absent), for replace-writes: a key deleted meanwhile fails too.
func (s *Store) atRevision(rel string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(s.key(rel)), "=", rev)
}

// getRev reads the revision of the key rel in a failed transaction's Else,
// for changed.
func (s *Store) getRev(rel string) clientv3.Op {
	return clientv3.OpGet(s.key(rel), clientv3.WithKeysOnly())
}

// changed builds the error for a failed compare on the key rel, from the
// getRev answer of the same transaction.
func changed(rel string, read int64, got *etcdserverpb.ResponseOp) error {
	e := &ChangedError{Key: rel, Read: read}
	if r := got.GetResponseRange(); r != nil && len(r.Kvs) > 0 {
		e.Now = r.Kvs[0].ModRevision
	}
	return e
}

// holdsLeader reports whether a failed transaction's read of the leader
// key shows name holding it.
func holdsLeader(got *etcdserverpb.ResponseOp, name string) bool {
	r := got.GetResponseRange()
	return r != nil && len(r.Kvs) > 0 && string(r.Kvs[0].Value) == name
}
