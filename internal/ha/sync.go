package ha

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mode is the cluster's replication mode.
type Mode string

const (
	ModeAsync  Mode = "async"  // commits never wait for a standby
	ModeSync   Mode = "sync"   // commits wait for sync_count standbys; degrade to async after sync_timeout
	ModeStrict Mode = "strict" // like sync, but never degrade: writes wait
)

// ClusterConfig is the run-time configuration in the store, shared by every
// agent and changed by `pgguard ctl config`, `ctl pause` and `ctl resume`.
type ClusterConfig struct {
	Mode          Mode   `json:"mode"`
	SyncCount     int    `json:"sync_count"`
	SyncMethod    string `json:"sync_method"` // "first" or "any" (quorum)
	SyncTimeoutMs int64  `json:"sync_timeout_ms"`
	Paused        bool   `json:"paused"`
	// Detached members are never synchronous and never promoted.
	Detached []string `json:"detached,omitempty"`
	// Stopped members keep PostgreSQL down on the operator's request; a
	// stopped primary keeps the leader key, so nobody is promoted.
	Stopped []string `json:"stopped,omitempty"`
	// PausedNodes take no step that changes them (no start, restart,
	// campaign, promotion, rewind or rebuild) until resumed; the rest of
	// the cluster fails over as usual.
	PausedNodes []string `json:"paused_nodes,omitempty"`
	// Removed members were decommissioned for good ('ctl remove'): no
	// agent counts them (no slot, no sync set), and a removed node's own
	// agent, should it start again, stops its PostgreSQL and takes no step.
	Removed  []string `json:"removed,omitempty"`
	Revision int64    `json:"-"`
}

// DefaultClusterConfig is what a cluster without a config key runs with.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{Mode: ModeAsync, SyncCount: 1, SyncMethod: "first", SyncTimeoutMs: 30000}
}

// SyncTimeout is the grace a lost synchronous standby gets before the
// primary stops waiting for it (sync mode only).
func (c ClusterConfig) SyncTimeout() time.Duration {
	return time.Duration(c.SyncTimeoutMs) * time.Millisecond
}

// IsDetached reports whether member is detached.
func (c ClusterConfig) IsDetached(member string) bool {
	for _, d := range c.Detached {
		if d == member {
			return true
		}
	}
	return false
}

// WithMember returns list with member added (in) or removed (!in), once.
func WithMember(list []string, member string, in bool) []string {
	var out []string
	for _, v := range list {
		if v != member {
			out = append(out, v)
		}
	}
	if in {
		out = append(out, member)
	}
	return out
}

// IsStopped reports whether the operator stopped member.
func (c ClusterConfig) IsStopped(member string) bool { return slices.Contains(c.Stopped, member) }

// IsRemoved reports whether member was removed from the cluster.
func (c ClusterConfig) IsRemoved(member string) bool { return slices.Contains(c.Removed, member) }

// String is the configuration on one line, as `ctl config` prints it.
func (c ClusterConfig) String() string {
	return fmt.Sprintf("mode %s   sync_count %d   sync_method %s   sync_timeout %s   paused %v   paused nodes %v   detached %v",
		c.Mode, c.SyncCount, c.SyncMethod, c.SyncTimeout(), c.Paused, c.PausedNodes, c.Detached)
}

// Synchronous reports whether commits are meant to wait for standbys.
func (c ClusterConfig) Synchronous() bool { return c.Mode == ModeSync || c.Mode == ModeStrict }

// Validate checks a configuration an operator wants to store.
func (c ClusterConfig) Validate() error {
	var bad []string
	switch c.Mode {
	case ModeAsync, ModeSync, ModeStrict:
	default:
		bad = append(bad, fmt.Sprintf("mode %q: use async, sync or strict", c.Mode))
	}
	if c.SyncCount < 1 {
		bad = append(bad, fmt.Sprintf("sync_count %d: at least 1", c.SyncCount))
	}
	if c.SyncMethod != "first" && c.SyncMethod != "any" {
		bad = append(bad, fmt.Sprintf("sync_method %q: use first or any", c.SyncMethod))
	}
	if c.SyncTimeoutMs < 0 {
		bad = append(bad, "sync_timeout must not be negative")
	}
	if len(bad) > 0 {
		return &InvalidConfigError{Problems: bad}
	}
	return nil
}

// InvalidConfigError is a cluster configuration that Validate refuses.
type InvalidConfigError struct{ Problems []string }

func (e *InvalidConfigError) Error() string {
	return "invalid cluster config: " + strings.Join(e.Problems, "; ")
}

// SyncState is the store's record of which standbys may hold acknowledged
// commits. The primary widens it before it widens synchronous_standby_names
// and narrows it only after, so it always covers every standby whose
// acknowledgement a commit may have waited for.
type SyncState struct {
	Leader  string   `json:"leader"`
	Members []string `json:"members"`
	// Quorum is how many of Members acknowledge each commit.
	Quorum   int   `json:"quorum"`
	Revision int64 `json:"-"`
}

// Standbys are the key's members but its leader: a new primary keeps
// itself in the key until its standbys have caught up (promotePlan), and
// it is not one of the standbys it waits for.
func (s SyncState) Standbys() []string {
	return slices.DeleteFunc(slices.Clone(s.Members), func(n string) bool { return n == s.Leader })
}

// SyncNames is a parsed synchronous_standby_names.
type SyncNames struct {
	Method   string // "first" or "any"
	Count    int
	Members  []string
	Wildcard bool
}

// Empty reports whether commits wait for nobody.
func (s SyncNames) Empty() bool { return !s.Wildcard && len(s.Members) == 0 }

// String renders the setting in PostgreSQL's syntax.
func (s SyncNames) String() string {
	if s.Empty() {
		return ""
	}
	list := "*"
	if !s.Wildcard {
		q := make([]string, len(s.Members))
		for i, m := range s.Members {
			q[i] = strconv.Quote(m)
		}
		list = strings.Join(q, ", ")
	}
	return fmt.Sprintf("%s %d (%s)", strings.ToUpper(s.Method), s.Count, list)
}

// ParseSyncNames reads the forms the agent writes ("FIRST 1 (\"n2\")",
// "ANY 2 (*)", "") and PostgreSQL's plain list form ("n2, n3").
func ParseSyncNames(v string) SyncNames {
	v = strings.TrimSpace(v)
	if v == "" {
		return SyncNames{}
	}
	out := SyncNames{Method: "first", Count: 1}
	if open := strings.IndexByte(v, '('); open >= 0 && strings.HasSuffix(v, ")") {
		head := strings.Fields(v[:open])
		if len(head) == 2 {
			out.Method = strings.ToLower(head[0])
			out.Count, _ = strconv.Atoi(head[1])
		} else if len(head) == 1 {
			out.Count, _ = strconv.Atoi(head[0])
		}
		v = v[open+1 : len(v)-1]
	}
	for _, p := range strings.Split(v, ",") {
		p = strings.Trim(strings.TrimSpace(p), `"`)
		if p == "*" {
			out.Wildcard = true
		} else if p != "" {
			out.Members = append(out.Members, p)
		}
	}
	sort.Strings(out.Members)
	return out
}

func subset(a, b []string) bool {
	for _, v := range a {
		if !slices.Contains(b, v) {
			return false
		}
	}
	return true
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, v := range b {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// desiredSync chooses the synchronous standbys the primary should wait for:
// healthy standbys streaming from it, not detached and not no_failover;
// current members first (stability), then the most advanced. A current
// member that stopped streaming keeps its place for sync_timeout (commits
// wait), forever in strict mode, unless a healthy standby replaces it.
func desiredSync(o Observation) []string {
	cfg := o.Cluster.Config
	if !cfg.Synchronous() {
		return nil
	}
	n := max(cfg.SyncCount, 1)
	current := o.Local.SyncNames.Members
	good := func(m Member) bool {
		return m.Name != o.Self && m.Healthy && m.Role == RoleStandby && m.Streaming &&
			m.Following == o.Self && !m.NoFailover && !m.Delayed && !cfg.IsDetached(m.Name) && !cfg.IsStopped(m.Name) &&
			slices.Contains(o.Local.Streamers, m.Name)
	}
	var keep, others []Member
	for _, m := range o.Cluster.Members {
		if !good(m) {
			continue
		}
		if slices.Contains(current, m.Name) {
			keep = append(keep, m)
		} else {
			others = append(others, m)
		}
	}
	byPosition := func(s []Member) {
		sort.Slice(s, func(i, j int) bool {
			if s[i].Position() != s[j].Position() {
				return s[i].Position() > s[j].Position()
			}
			return s[i].Name < s[j].Name
		})
	}
	byPosition(keep)
	byPosition(others)
	var chosen []string
	for _, m := range append(keep, others...) {
		if len(chosen) == n {
			break
		}
		chosen = append(chosen, m.Name)
	}
	// Lost members keep their place while their grace lasts.
	for _, name := range current {
		if len(chosen) >= n || slices.Contains(chosen, name) || cfg.IsDetached(name) || cfg.IsStopped(name) {
			continue
		}
		// Its grace runs from when it was last seen streaming from this
		// primary or from when the set last changed (at promotion: when it
		// was named), whichever is later: a memory from an earlier term of
		// this node as primary must not cut the grace short, or a new
		// primary would degrade to async at once and acknowledge commits
		// that no standby has (found by the chaos suite's double kill).
		seen := o.Memory.LastStreaming[name]
		if o.Memory.SyncChangeAt.After(seen) {
			seen = o.Memory.SyncChangeAt
		}
		if cfg.Mode == ModeStrict || (!seen.IsZero() && o.Now.Sub(seen) < cfg.SyncTimeout()) {
			chosen = append(chosen, name)
		}
	}
	sort.Strings(chosen)
	return chosen
}

// syncSteps moves the sync key and synchronous_standby_names one safe step
// towards the desired set: widen the key, then the setting; narrow the
// setting, then the key (once the new members have every commit).
func syncSteps(o Observation) Plan {
	cfg := o.Cluster.Config
	want := desiredSync(o)
	var key []string
	if s := o.Cluster.Sync; s != nil && s.Leader == o.Self {
		key = s.Members
	}
	names := o.Local.SyncNames
	quorum := max(cfg.SyncCount, 1)
	if cfg.Mode != ModeStrict {
		// Sync mode waits for as many as there are, up to sync_count.
		quorum = min(quorum, len(want))
	}
	if !cfg.Synchronous() {
		plan := Plan{}
		if !names.Empty() {
			plan = append(plan, Action{Kind: SetSyncNames, Reason: "replication mode is async"})
		}
		if o.Cluster.Sync != nil && len(o.Cluster.Sync.Members) > 0 && names.Empty() {
			plan = append(plan, Action{Kind: SetSyncKey, Reason: "replication mode is async"})
		}
		return plan
	}
	if o.Cluster.Sync == nil || o.Cluster.Sync.Leader != o.Self || !subset(want, key) ||
		(len(want) > 0 && o.Cluster.Sync.Quorum > quorum) {
		return Plan{{Kind: SetSyncKey, Members: union(key, want), Quorum: quorum,
			Reason: fmt.Sprintf("record %v as synchronous before waiting for them", want)}}
	}
	if names.Wildcard && len(want) == 0 &&
		(cfg.Mode == ModeStrict || o.Now.Sub(o.Memory.SyncChangeAt) < cfg.SyncTimeout()) {
		return nil // just promoted: keep waiting for any standby to connect
	}
	if names.Wildcard || !sameSet(names.Members, want) || (len(want) > 0 && names.Count != quorum) {
		reason := fmt.Sprintf("synchronous standbys %v", want)
		if len(want) == 0 {
			reason = fmt.Sprintf("no synchronous standby left after sync_timeout (%s): degrade to async, commits no longer wait", cfg.SyncTimeout())
		}
		return Plan{{Kind: SetSyncNames, Members: want, Quorum: quorum, Reason: reason}}
	}
	if !sameSet(key, want) || o.Cluster.Sync.Quorum != quorum {
		for _, name := range want {
			if o.Cluster.Members[name].Position() < o.Memory.SyncChangeLSN {
				return nil // not caught up with the change yet: keep the wider key
			}
		}
		return Plan{{Kind: SetSyncKey, Members: want, Quorum: quorum, Reason: fmt.Sprintf("synchronous standbys are now exactly %v", want)}}
	}
	return nil
}

func sameSet(a, b []string) bool { return len(a) == len(b) && subset(a, b) }

// syncCandidacy applies the sync-mode failover rule: only a member of the
// sync key may be promoted, and only when enough of the key's members have
// reported since the leader was lost to be sure one of them holds every
// acknowledged commit (Members - Quorum + 1); then the most advanced wins.
func syncCandidacy(o Observation) (bool, string, bool) {
	return syncCandidacyTies(o, false)
}

// syncCandidacyTies is syncCandidacy; with selfWinsTies a live synchronous
// member at the same position does not beat this node (the target of a
// switchover, which the old primary caught up, is not outranked by name).
func syncCandidacyTies(o Observation, selfWinsTies bool) (bool, string, bool) {
	s := o.Cluster.Sync
	if !o.Cluster.Config.Synchronous() || s == nil || len(s.Members) == 0 {
		return false, "", false // not in force: the async rule applies
	}
	if !slices.Contains(s.Members, o.Self) {
		return false, fmt.Sprintf("not synchronous (synchronous: %v): promoting this node could lose acknowledged commits", s.Members), true
	}
	alive := []string{o.Self}
	mine := o.Local.Position()
	for _, name := range s.Members {
		m, ok := o.Cluster.Members[name]
		if name == o.Self || !ok || !m.Healthy || m.Role != RoleStandby || m.Revision <= o.Memory.LeaderLostRev {
			continue
		}
		alive = append(alive, name)
		if p := m.Position(); p > mine || (p == mine && name < o.Self && !selfWinsTies) {
			return false, fmt.Sprintf("synchronous standby %s is further ahead (%s vs our %s)", name, p, mine), true
		}
	}
	need := len(s.Members) - max(s.Quorum, 1) + 1
	if len(alive) < need {
		return false, fmt.Sprintf("only %d of %d synchronous standbys reachable (%v); %d needed to be sure no acknowledged commit is lost",
			len(alive), len(s.Members), alive, need), true
	}
	return true, "", true
}
