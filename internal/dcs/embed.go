package dcs

import (
	"context"
	"encoding/json"
	"expvar"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/client/pkg/v3/transport"

	"go.etcd.io/etcd/server/v3/embed"
)

// EmbedOptions configure the etcd member an agent runs inside itself.
type EmbedOptions struct {
	Name           string
	DataDir        string
	ClientURL      string
	PeerURL        string
	InitialCluster string
	// Existing joins a running cluster (the member was added to it
	// first) instead of founding one.
	Existing     bool
	ClusterToken string
	HeartbeatMs  uint
	ElectionMs   uint
	LogFile      string
	// CAFile, CertFile and KeyFile turn on TLS for client and peer
	// traffic, each requiring a certificate of the CA from the other side.
	CAFile, CertFile, KeyFile string
}

// Embedded is a running etcd member.
type Embedded struct {
	etcd *embed.Etcd

	// active caches the transport's view of the peers: gathering etcd's
	// metrics costs a few milliseconds of CPU.
	activeMu   sync.Mutex
	active     map[string]bool
	activeRead time.Time
}

// activeMaxAge is how old the cached view of the peers' streams may be.
const activeMaxAge = time.Second

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
	if _, err := os.Stat(filepath.Join(o.DataDir, "member")); err == nil || o.Existing {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	if o.HeartbeatMs > 0 {
		cfg.TickMs = o.HeartbeatMs
	}
	if o.ElectionMs > 0 {
		cfg.ElectionMs = o.ElectionMs
	}
	if o.CertFile != "" {
		info := transport.TLSInfo{CertFile: o.CertFile, KeyFile: o.KeyFile, TrustedCAFile: o.CAFile, ClientCertAuth: true}
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = info, info
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

// RaftPeer is what the raft leader's member knows of one other voting
// member, from etcd's own state.
type RaftPeer struct {
	// Active: etcd's peer transport has a working stream to the member.
	Active bool
	// Match is the highest log index the leader knows the member holds.
	Match uint64
}

// RaftView is this member's view of the raft group. Peers is filled only
// when the member leads (a follower tracks no progress).
type RaftView struct {
	Leader bool
	// Commit is the leader's commit index.
	Commit uint64
	// Peers are the other voting members, by name.
	Peers map[string]RaftPeer
	// ElectionTimeout is the member's configured election timeout.
	ElectionTimeout time.Duration
}

// CaughtUp reports whether the peer called name holds the leader's log up
// to its commit index (false when unknown).
func (v RaftView) CaughtUp(name string) bool {
	p, ok := v.Peers[name]
	return ok && v.Commit > 0 && p.Match >= v.Commit
}

// View reads the raft state the member keeps: who leads, and as leader,
// which peers its transport reaches and how far each has replicated. etcd
// exports neither through its API: the transport's view comes from its
// etcd_network_active_peers gauge (labelled with this member's ID) and the
// replication progress from the raft.status expvar, which holds the status
// of the last raft node started in the process and is used only when its
// ID is this member's. Whatever cannot be read is left out, so a caller
// that needs it sees the peer as unknown, never as healthy.
func (e *Embedded) View() RaftView {
	s := e.etcd.Server
	v := RaftView{ElectionTimeout: time.Duration(e.etcd.Config().ElectionMs) * time.Millisecond}
	self := s.MemberID()
	if uint64(s.Leader()) != uint64(self) {
		return v
	}
	v.Leader = true
	active := e.activePeers(self.String())
	commit, match, ok := raftProgress(uint64(self))
	if ok {
		v.Commit = commit
	}
	v.Peers = map[string]RaftPeer{}
	for _, m := range s.Cluster().Members() {
		if m.ID == self || m.IsLearner {
			continue
		}
		v.Peers[m.Name] = RaftPeer{Active: active[m.ID.String()], Match: match[uint64(m.ID)]}
	}
	return v
}

// activePeers is readActivePeers at most once per activeMaxAge.
func (e *Embedded) activePeers(local string) map[string]bool {
	e.activeMu.Lock()
	defer e.activeMu.Unlock()
	if e.active == nil || time.Since(e.activeRead) > activeMaxAge {
		e.active, e.activeRead = readActivePeers(local), time.Now()
	}
	return e.active
}

// readActivePeers reads etcd's etcd_network_active_peers gauge for the
// member local (hex ID): the remote IDs whose streams are up.
func readActivePeers(local string) map[string]bool {
	out := map[string]bool{}
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		if f.GetName() != "etcd_network_active_peers" {
			continue
		}
		for _, m := range f.GetMetric() {
			var l, r string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "Local":
					l = lp.GetValue()
				case "Remote":
					r = lp.GetValue()
				}
			}
			if l == local && m.GetGauge().GetValue() > 0 {
				out[r] = true
			}
		}
	}
	return out
}

// raftProgress reads the raft.status expvar: the commit index and each
// follower's matched index, when the status is the leader self's.
func raftProgress(self uint64) (commit uint64, match map[uint64]uint64, ok bool) {
	match = map[uint64]uint64{}
	v := expvar.Get("raft.status")
	if v == nil {
		return 0, match, false
	}
	var st struct {
		ID        string `json:"id"`
		Commit    uint64 `json:"commit"`
		RaftState string `json:"raftState"`
		Progress  map[string]struct {
			Match uint64 `json:"match"`
		} `json:"progress"`
	}
	if err := json.Unmarshal([]byte(v.String()), &st); err != nil {
		return 0, match, false
	}
	if id, err := strconv.ParseUint(st.ID, 16, 64); err != nil || id != self || st.RaftState != "StateLeader" {
		return 0, match, false
	}
	for k, p := range st.Progress {
		if id, err := strconv.ParseUint(k, 16, 64); err == nil {
			match[id] = p.Match
		}
	}
	return st.Commit, match, true
}

// MoveLeadershipTo transfers raft leadership to the member called name,
// waiting at most bound. The agent on the database primary calls it so
// that losing the primary's host does not also cost a store election
// (which would extend every lease to a full TTL and lengthen the
// failover). While a transfer is pending the leader drops proposals, and
// raft itself abandons a transfer after one election timeout: the caller
// checks the target is alive and caught up, and bounds the wait so that
// it cannot overlap the primary's renewal deadline.
func (e *Embedded) MoveLeadershipTo(ctx context.Context, name string, bound time.Duration) error {
	s := e.etcd.Server
	for _, m := range s.Cluster().Members() {
		if m.Name == name && !m.IsLearner {
			ctx, cancel := context.WithTimeout(ctx, bound)
			defer cancel()
			if err := s.MoveLeader(ctx, s.Lead(), uint64(m.ID)); err != nil {
				return fmt.Errorf("move etcd leadership to %s: %w", name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("move etcd leadership: no voting member named %s", name)
}

// LeaderChanged is closed at the next change of raft leader.
func (e *Embedded) LeaderChanged() <-chan struct{} { return e.etcd.Server.LeaderChangedNotify() }
