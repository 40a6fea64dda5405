package dcs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// StoreMember is one etcd member as its own Status call reports it.
type StoreMember struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	ClientURL string `json:"client_url"`
	Learner   bool   `json:"learner,omitempty"`
	Reachable bool   `json:"reachable"`
	// Leader: the member reports itself as the raft leader.
	Leader bool `json:"leader"`
	// RaftTerm and RaftIndex (its committed index) as the member reports
	// them; zero when unreachable.
	RaftTerm  uint64 `json:"raft_term,omitempty"`
	RaftIndex uint64 `json:"raft_index,omitempty"`
	Error     string `json:"error,omitempty"`
	id        uint64
}

// statusTimeout bounds the Status call to one member: a dead member on
// loopback refuses at once, a cut-off one costs this much.
const statusTimeout = 500 * time.Millisecond

// Members asks every etcd member for its own status, in parallel.
func (s *Store) Members(ctx context.Context) ([]StoreMember, error) {
	list, err := s.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	out := make([]StoreMember, len(list.Members))
	var wg sync.WaitGroup
	for i, m := range list.Members {
		out[i] = StoreMember{Name: m.Name, ID: fmt.Sprintf("%x", m.ID), Learner: m.IsLearner, id: m.ID}
		if len(m.ClientURLs) == 0 {
			out[i].Error = "no client URL (not started yet)"
			continue
		}
		out[i].ClientURL = m.ClientURLs[0]
		wg.Add(1)
		go func(sm *StoreMember) {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			st, err := s.cli.Status(sctx, sm.ClientURL)
			if err != nil {
				sm.Error = err.Error()
				return
			}
			sm.Reachable, sm.Leader = true, st.Leader == sm.id
			sm.RaftTerm, sm.RaftIndex = st.RaftTerm, st.RaftIndex
		}(&out[i])
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// MoveStoreLeader hands raft leadership to the member called name, for
// maintenance (before taking the leader's host down). It refuses when the
// target does not answer or has not caught up with the leader's log, the
// two cases in which a transfer can only stall the store for an election
// timeout.
func (s *Store) MoveStoreLeader(ctx context.Context, name string) error {
	members, err := s.Members(ctx)
	if err != nil {
		return err
	}
	var leader, target *StoreMember
	for i := range members {
		m := &members[i]
		if m.Leader {
			leader = m
		}
		if m.Name == name {
			target = m
		}
	}
	switch {
	case target == nil:
		return fmt.Errorf("no etcd member named %s (members: %s)", name, memberNames(members))
	case target.Learner:
		return fmt.Errorf("etcd member %s is a learner: it cannot lead", name)
	case !target.Reachable:
		return fmt.Errorf("etcd member %s does not answer (%s): leadership stays where it is", name, target.Error)
	case leader == nil:
		return errors.New("no etcd member reports itself as the raft leader: the store is electing or has no quorum")
	case leader.Name == name:
		return nil
	case target.RaftIndex < leader.RaftIndex:
		return fmt.Errorf("etcd member %s has committed index %d, behind the leader %s's %d: try again in a moment", name, target.RaftIndex, leader.Name, leader.RaftIndex)
	}
	// The request must reach the leader itself.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{leader.ClientURL}, DialTimeout: max(s.dialTimeout, time.Second), TLS: s.tls, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("connect to the etcd leader %s: %w", leader.Name, err)
	}
	defer cli.Close()
	if _, err := cli.MoveLeader(ctx, target.id); err != nil {
		return fmt.Errorf("move etcd leadership from %s to %s: %w", leader.Name, name, err)
	}
	return nil
}

func memberNames(ms []StoreMember) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}
