package dcs

import (
	"context"
	"fmt"

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
// the conditions (ha.RemoveChecks). Running it again finishes an
// interrupted removal.
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
