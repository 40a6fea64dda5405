package dcs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pgguard/pgguard/internal/ha"
)

// RemoveResult says what RemoveNode changed.
type RemoveResult struct {
	Node string `json:"node"`
	// StoreMemberID is the etcd member removed ("" when node had none).
	StoreMemberID string `json:"store_member_id,omitempty"`
}

// RemoveNode forgets node for good (ctl remove): it is marked removed in
// the cluster configuration (a compare-and-swap; so no agent counts it,
// the primary drops its slot, and its own agent takes no step should it
// start again) and taken out of the operator's lists, its keys go (a
// status record, replay and rebuild requests, a witness mark), and its
// etcd member, if any, leaves the store's membership. The caller checked
// the conditions (ha.RemoveChecks). The keys are deleted unconditionally:
// the operator forgets the node whatever it last wrote. Running it again
// finishes an interrupted removal.
func (s *Store) RemoveNode(ctx context.Context, node string) (RemoveResult, error) {
	res := RemoveResult{Node: node}
	_, err := s.UpdateConfig(ctx, func(c *ha.ClusterConfig) error {
		c.Removed = ha.WithMember(c.Removed, node, true)
		c.Stopped = ha.WithMember(c.Stopped, node, false)
		c.Detached = ha.WithMember(c.Detached, node, false)
		c.PausedNodes = ha.WithMember(c.PausedNodes, node, false)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("mark %s removed: %w", node, err)
	}
	for _, dir := range []string{"members", "replay", "reinit", "witness"} {
		if _, err := s.cli.Delete(ctx, s.key(dir, node)); err != nil {
			return res, fmt.Errorf("delete %s/%s: %w", dir, node, err)
		}
	}
	list, err := s.cli.MemberList(ctx)
	if err != nil {
		return res, fmt.Errorf("list etcd members: %w", err)
	}
	for _, m := range list.Members {
		if m.Name != node {
			continue
		}
		if _, err := s.cli.MemberRemove(ctx, m.ID); err != nil {
			return res, fmt.Errorf("remove etcd member %s (%x): %w", node, m.ID, err)
		}
		res.StoreMemberID = fmt.Sprintf("%x", m.ID)
	}
	return res, nil
}

// AddResult says what AddNode changed and what the new node's
// etcd.embed.initial_cluster must be.
type AddResult struct {
	Node           string `json:"node"`
	StoreMemberID  string `json:"store_member_id"`
	InitialCluster string `json:"initial_cluster"`
}

// AddNode adds node's etcd member (at peerURL) to the store's membership
// (ctl add), before its agent first starts with initial_cluster_state
// existing; a node removed before under that name is no longer ignored.
func (s *Store) AddNode(ctx context.Context, node, peerURL string) (AddResult, error) {
	res := AddResult{Node: node}
	// etcd refuses a new voter ("unhealthy cluster") until every member
	// has been connected for a few seconds, e.g. right after a restart:
	// that passes, so it is retried while ctx lasts.
	var added *clientv3.MemberAddResponse
	var err error
	for {
		added, err = s.cli.MemberAdd(ctx, []string{peerURL})
		if err == nil || !strings.Contains(err.Error(), "unhealthy cluster") {
			break
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("add etcd member %s at %s: %w (etcd counts a member healthy after 5 s of connection; try again)", node, peerURL, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return res, fmt.Errorf("add etcd member %s at %s: %w", node, peerURL, err)
	}
	res.StoreMemberID = fmt.Sprintf("%x", added.Member.ID)
	var parts []string
	for _, m := range added.Members {
		name := m.Name
		if m.ID == added.Member.ID {
			name = node
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	sort.Strings(parts)
	res.InitialCluster = strings.Join(parts, ",")
	if _, err := s.UpdateConfig(ctx, func(c *ha.ClusterConfig) error {
		c.Removed = ha.WithMember(c.Removed, node, false)
		return nil
	}); err != nil {
		return res, fmt.Errorf("etcd member added; clearing %s from the removed members failed (run 'pgguard ctl add' again): %w", node, err)
	}
	return res, nil
}
