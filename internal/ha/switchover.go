package ha

import (
	"fmt"
	"slices"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Switchover is an operator's request, in the store, to hand the primary
// role from From to To.
type Switchover struct {
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at,omitempty"` // not before (zero: at once)
	By   string    `json:"by,omitempty"`
	// Revision is the store revision that created this request, and
	// HandedOver the shutdown checkpoint the old primary confirmed the
	// candidate had received when it released the key for this request
	// (zero: it did not, or not yet). Both are read from the store, not
	// written with the request.
	Revision   int64   `json:"-"`
	HandedOver lsn.LSN `json:"-"`
}

// Check is one condition of an operation, with its outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Transient: a failure that passes by itself within a few loops of a
	// healthy cluster (a candidate a segment behind, a stream
	// reconnecting), which an operation may wait out.
	Transient bool `json:"transient,omitempty"`
}

// Failed lists the checks that did not pass.
func Failed(checks []Check) []Check {
	var out []Check
	for _, c := range checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// maxSwitchoverLag is how far behind (bytes) a switchover candidate may be
// when asked; the primary still waits for it to receive everything.
const maxSwitchoverLag = 16 << 20

// BestSwitchoverCandidate picks the healthy streaming standby with the
// most WAL that may take over from leader ("" when none qualifies).
func BestSwitchoverCandidate(c Cluster, leader string) string {
	best := ""
	for _, n := range c.MemberNames() {
		if n == leader {
			continue
		}
		if len(Failed(SwitchoverChecks(c, leader, n))) > 0 {
			continue
		}
		if best == "" || c.Members[n].Position() > c.Members[best].Position() {
			best = n
		}
	}
	return best
}

// NearestSwitchoverCandidate is the member a switchover without a named
// candidate should wait for when BestSwitchoverCandidate finds none: the
// most advanced one whose failed checks all pass by themselves (a
// standby still catching up after a bulk load). "" when there is none.
func NearestSwitchoverCandidate(c Cluster, leader string) string {
	near := ""
	for _, n := range c.MemberNames() {
		if n == leader {
			continue
		}
		failed := Failed(SwitchoverChecks(c, leader, n))
		if slices.ContainsFunc(failed, func(f Check) bool { return !f.Transient }) {
			continue
		}
		if near == "" || c.Members[n].Position() > c.Members[near].Position() {
			near = n
		}
	}
	return near
}

// SwitchoverChecks lists every condition for handing the primary role from
// leader to candidate, each with pass or fail: what `ctl switchover --check`
// prints and what the primary re-checks before it steps down.
func SwitchoverChecks(c Cluster, leader, candidate string) []Check {
	var out []Check
	add := func(name string, ok bool, format string, args ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	lm, leaderUp := c.Members[leader]
	add("leader present", c.Leader != nil && c.Leader.Name == leader, "leader key held by %q", leaderName(c))
	add("primary healthy", leaderUp && lm.Role == RolePrimary && lm.Healthy, "%s is %s/%s", leader, lm.Role, lm.State)
	m, ok := c.Members[candidate]
	add("candidate known", ok, "member %q %s", candidate, map[bool]string{true: "is publishing its status", false: "is not a live member"}[ok])
	if !ok {
		return out
	}
	add("candidate is not the primary", candidate != leader, "%s", candidate)
	add("candidate healthy", m.Healthy && m.Role == RoleStandby, "%s is %s/%s", candidate, m.Role, m.State)
	add("candidate streaming from the primary", m.Streaming && m.Following == leader, "streaming=%v following=%q", m.Streaming, m.Following)
	out[len(out)-1].Transient = true
	lag := int64(0)
	if lm.WalLSN > m.Position() {
		lag = int64(lm.WalLSN - m.Position())
	}
	add("candidate caught up", lag <= maxSwitchoverLag, "%d bytes behind (limit %d)", lag, maxSwitchoverLag)
	out[len(out)-1].Transient = true
	add("candidate may be promoted", !m.NoFailover, "no_failover=%v", m.NoFailover)
	add("candidate not detached", !c.Config.IsDetached(candidate), "detached=%v", c.Config.IsDetached(candidate))
	add("candidate not delayed", !m.Delayed, "delayed=%v (an apply delay or a replay request)", m.Delayed)
	add("candidate not paused", !c.Config.IsNodePaused(candidate), "paused=%v ('pgguard ctl resume %s')", c.Config.IsNodePaused(candidate), candidate)
	if c.Config.Synchronous() && c.Sync != nil && len(c.Sync.Members) > 0 {
		add("candidate synchronous", slices.Contains(c.Sync.Members, candidate), "synchronous standbys %v", c.Sync.Members)
	}
	add("no operation under way", c.Switchover == nil || (c.Switchover.From == leader && c.Switchover.To == candidate),
		"%s", describeSwitchover(c.Switchover))
	return out
}

func leaderName(c Cluster) string {
	if c.Leader == nil {
		return ""
	}
	return c.Leader.Name
}

func describeSwitchover(s *Switchover) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("switchover %s → %s requested by %s", s.From, s.To, s.By)
}

// switchoverPlan is the primary's part: step down for a due request whose
// checks pass, or drop a request that can no longer be honoured.
func switchoverPlan(o Observation) (Plan, bool) {
	sw := o.Cluster.Switchover
	if sw == nil || sw.From != o.Self || (!sw.At.IsZero() && o.Now.Before(sw.At)) {
		return nil, false
	}
	if failed := Failed(SwitchoverChecks(o.Cluster, o.Self, sw.To)); len(failed) > 0 {
		return Plan{{Kind: ClearSwitchover, Reason: fmt.Sprintf("switchover to %s refused: %s: %s", sw.To, failed[0].Name, failed[0].Detail)}}, false
	}
	return Plan{{Kind: HandOver, Target: sw.To, Reason: "switchover requested by " + sw.By}}, true
}

// TakeoverChecks lists the conditions for promoting candidate by hand when
// the primary is gone: what `ctl takeover --check` prints. With force, only
// the conditions without which a promotion is impossible are kept.
func TakeoverChecks(c Cluster, candidate string, force bool) []Check {
	var out []Check
	add := func(name string, ok bool, format string, args ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	add("primary gone", c.Leader == nil, "leader key held by %q (a live primary: use switchover)", leaderName(c))
	m, ok := c.Members[candidate]
	add("candidate known", ok, "member %q %s", candidate, map[bool]string{true: "is publishing its status", false: "is not a live member"}[ok])
	if !ok {
		return out
	}
	add("candidate healthy standby", m.Healthy && m.Role == RoleStandby, "%s is %s/%s", candidate, m.Role, m.State)
	add("no operation under way", c.Takeover == nil && c.Switchover == nil, "takeover=%v switchover=%s", c.Takeover != nil, describeSwitchover(c.Switchover))
	if force {
		return out
	}
	best, bestPos := "", lsn.LSN(0)
	for n, o := range c.Members {
		if o.Role == RoleStandby && o.Healthy && o.Position() >= bestPos {
			if o.Position() > bestPos || best == "" || n < best {
				best, bestPos = n, o.Position()
			}
		}
	}
	add("candidate has the most WAL", m.Position() >= bestPos, "%s at %s; most advanced %s at %s", candidate, m.Position(), best, bestPos)
	add("candidate may be promoted", !m.NoFailover && !c.Config.IsDetached(candidate), "no_failover=%v detached=%v", m.NoFailover, c.Config.IsDetached(candidate))
	if c.Config.Synchronous() && c.Sync != nil && len(c.Sync.Members) > 0 {
		add("candidate synchronous", slices.Contains(c.Sync.Members, candidate), "synchronous standbys %v", c.Sync.Members)
	}
	lag := int64(0)
	if c.Optime > m.Position() {
		lag = int64(c.Optime - m.Position())
	}
	add("candidate within maximum lag", lag <= maxSwitchoverLag, "%d bytes behind the last primary position %s", lag, c.Optime)
	return out
}

// BestTakeoverCandidate is the healthy standby with the most WAL.
func BestTakeoverCandidate(c Cluster) string {
	best := ""
	for n, m := range c.Members {
		if m.Role != RoleStandby || !m.Healthy {
			continue
		}
		if best == "" || m.Position() > c.Members[best].Position() || (m.Position() == c.Members[best].Position() && n < best) {
			best = n
		}
	}
	return best
}
