package dcs

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// EmbedOptions configure the etcd member an agent runs inside itself.
type EmbedOptions struct {
	Name           string
	DataDir        string
	ClientURL      string
	PeerURL        string
	InitialCluster string
	ClusterToken   string
	HeartbeatMs    uint
	ElectionMs     uint
	LogFile        string
}

// Embedded is a running etcd member.
type Embedded struct {
	etcd *embed.Etcd
}

// StartEmbedded starts the member and returns without waiting for the
// cluster to form: the agent keeps working (fenced, read-only) until it has
// a quorum.
func StartEmbedded(o EmbedOptions) (*Embedded, error) {
	cfg := embed.NewConfig()
	cfg.Name = o.Name
	cfg.Dir = o.DataDir
	cu, err := url.Parse(o.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd client url %q: %w", o.ClientURL, err)
	}
	pu, err := url.Parse(o.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd peer url %q: %w", o.PeerURL, err)
	}
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = o.InitialCluster
	cfg.InitialClusterToken = o.ClusterToken
	cfg.ClusterState = embed.ClusterStateFlagNew
	if _, err := os.Stat(filepath.Join(o.DataDir, "member")); err == nil {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	if o.HeartbeatMs > 0 {
		cfg.TickMs = o.HeartbeatMs
	}
	if o.ElectionMs > 0 {
		cfg.ElectionMs = o.ElectionMs
	}
	cfg.LogLevel = "warn"
	if o.LogFile != "" {
		cfg.LogOutputs = []string{o.LogFile}
	}
	cfg.AutoCompactionMode = "revision"
	cfg.AutoCompactionRetention = "10000"
	cfg.QuotaBackendBytes = 1 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd member %s: %w", o.Name, err)
	}
	return &Embedded{etcd: e}, nil
}

// Ready is closed once the member has joined a cluster with a quorum.
func (e *Embedded) Ready() <-chan struct{} { return e.etcd.Server.ReadyNotify() }

// Close stops the member.
func (e *Embedded) Close() {
	e.etcd.Close()
}

// IsRaftLeader reports whether this member leads the etcd cluster.
func (e *Embedded) IsRaftLeader() bool {
	s := e.etcd.Server
	return uint64(s.Leader()) == uint64(s.MemberID())
}

// MoveLeadershipTo transfers raft leadership to the member called name.
// The agent on the database primary calls it so that losing the primary's
// host does not also cost a store election (which would extend every lease
// to a full TTL and lengthen the failover).
func (e *Embedded) MoveLeadershipTo(ctx context.Context, name string) error {
	s := e.etcd.Server
	for _, m := range s.Cluster().Members() {
		if m.Name == name && !m.IsLearner {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := s.MoveLeader(ctx, s.Lead(), uint64(m.ID)); err != nil {
				return fmt.Errorf("move etcd leadership to %s: %w", name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("move etcd leadership: no voting member named %s", name)
}
