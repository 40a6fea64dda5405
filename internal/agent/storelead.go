package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// observeStore reads, on the primary (it holds the leader key), the
// embedded etcd member's view of the raft group, with StableSince: when
// this member last became raft leader or the set of peers its transport
// reaches last changed.
func (a *Agent) observeStore(now time.Time, primary bool) ha.StoreView {
	if a.embedded == nil || !primary {
		// Only a primary moves raft leadership; nothing else reads this.
		a.storeKey, a.storeStableSince = "", time.Time{}
		return ha.StoreView{}
	}
	v := a.embedded.View()
	view := ha.StoreView{RaftLeader: v.Leader, Peers: map[string]ha.StorePeer{}}
	var active []string
	for name, p := range v.Peers {
		view.Peers[name] = ha.StorePeer{Active: p.Active, CaughtUp: v.CaughtUp(name)}
		if p.Active {
			active = append(active, name)
		}
	}
	sort.Strings(active)
	if k := fmt.Sprintf("leader=%t active=%s", v.Leader, strings.Join(active, ",")); k != a.storeKey || a.storeStableSince.IsZero() {
		a.storeKey, a.storeStableSince = k, now
	}
	view.StableSince = a.storeStableSince
	return view
}

// raftLeaderChanged is closed at the next change of raft leader (never
// with an external etcd).
func (a *Agent) raftLeaderChanged() <-chan struct{} {
	if a.embedded == nil {
		return nil
	}
	return a.embedded.LeaderChanged()
}

// electionTimeout is the embedded member's raft election timeout (zero
// with an external etcd, whose timeout the agent does not know).
func (a *Agent) electionTimeout() time.Duration {
	if !a.cfg.Embedded() {
		return 0
	}
	return time.Duration(a.cfg.Etcd.Embed.ElectionMs) * time.Millisecond
}

// moveStoreLeadership hands raft leadership to target, which ha.Decide
// chose as reachable and caught up, right after this loop's renewal. It
// checks the member's view once more, since a member can die between the
// observation and the step, and waits at most one election timeout (raft
// abandons a transfer by then), and never past the point where the next
// renewal could no longer beat the fencing deadline. A transfer that fails
// leaves leadership where it is.
func (a *Agent) moveStoreLeadership(ctx context.Context, target string) {
	v := a.embedded.View()
	if !v.Leader || !v.Peers[target].Active || !v.CaughtUp(target) {
		a.log.Info("store leadership stays: the target is no longer reachable and caught up", "to", target)
		return
	}
	a.mu.Lock()
	lastRenew := a.mem.LastRenew
	a.mu.Unlock()
	h := a.cfg.HA
	if left := h.TTL.D() - h.SafetyMargin.D() - time.Since(lastRenew) - h.LoopInterval.D(); left < v.ElectionTimeout {
		a.log.Info("store leadership stays: a transfer could overlap the renewal deadline", "to", target, "time_left", left.Round(time.Millisecond))
		return
	}
	started := time.Now()
	if err := a.embedded.MoveLeadershipTo(ctx, target, v.ElectionTimeout); err != nil {
		a.log.Warn("cannot move store leadership", "to", target, "took", time.Since(started).Round(time.Millisecond), "err", err)
		return
	}
	a.log.Info("moved etcd leadership off the primary", "to", target, "took", time.Since(started).Round(time.Millisecond))
}
