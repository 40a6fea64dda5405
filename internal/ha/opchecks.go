package ha

import (
	"fmt"
	"slices"
	"strings"
)

// The conditions of the operator's operations that change the cluster
// (MON-2): what `--check` prints for each, pass or fail, without changing
// anything, and what the command itself refuses on. Switchover and takeover
// have theirs in switchover.go.

type checks []Check

func (cs *checks) add(name string, ok bool, format string, args ...any) bool {
	*cs = append(*cs, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	return ok
}

// known reports whether node publishes a status, is held out of the
// cluster by the operator (stopped or detached, so possibly silent) or is
// named in the synchronous set.
func (c Cluster) known(node string) bool {
	_, ok := c.Members[node]
	inSync := c.Sync != nil && slices.Contains(c.Sync.Members, node)
	return ok || inSync || c.Config.IsStopped(node) || c.Config.IsDetached(node)
}

func (c Cluster) memberList() string {
	return strings.Join(c.MemberNames(), ", ")
}

// noOperation is the shared condition that no multi-step operation of the
// cluster is under way.
func (cs *checks) noOperation(c Cluster) {
	what := "none"
	switch {
	case c.Restore != nil:
		what = "a whole-cluster restore on " + c.Restore.Node
	case c.Switchover != nil:
		what = describeSwitchover(c.Switchover)
	case c.Takeover != nil:
		what = "a takeover by " + c.Takeover.To
	}
	cs.add("no operation under way", what == "none", "%s", what)
}

// syncLeft counts the standbys that could be synchronous without the
// given one: live, healthy, streaming, not detached, not delayed.
func syncLeft(c Cluster, without string) int {
	n := 0
	for name, m := range c.Members {
		if name == without || m.Role != RoleStandby || !m.Healthy || !m.Streaming || m.Delayed ||
			c.Config.IsDetached(name) || c.Config.IsStopped(name) {
			continue
		}
		n++
	}
	return n
}

// strictCapacity fails in strict mode when losing node (a standby) would
// leave fewer synchronous candidates than the mode waits for: every
// commit would then block.
func (cs *checks) strictCapacity(c Cluster, node, what string) {
	if c.Config.Mode != ModeStrict {
		return
	}
	need, left := max(c.Config.SyncCount, 1), syncLeft(c, node)
	cs.add("strict mode keeps its synchronous standbys", left >= need,
		"%d standbys could acknowledge commits after %s %s, strict mode needs %d (below that, every commit waits)", left, what, node, need)
}

// StopChecks are the conditions of `ctl stop NODE`.
func StopChecks(c Cluster, node string) []Check {
	var cs checks
	if !cs.add("node known", c.known(node), "%q among the members (%s)", node, c.memberList()) {
		return cs
	}
	cs.add("not stopped already", !c.Config.IsStopped(node), "stopped by the operator: %v", c.Config.IsStopped(node))
	cs.noOperation(c)
	if c.Leader != nil && c.Leader.Name == node {
		cs.add("primary stop promotes nobody", true, "%s keeps the leader key; writes stop until 'pgguard ctl start %s'", node, node)
	} else {
		cs.strictCapacity(c, node, "stopping")
	}
	return cs
}

// StartChecks are the conditions of `ctl start NODE`.
func StartChecks(c Cluster, node string) []Check {
	var cs checks
	if !cs.add("node known", c.known(node), "%q among the members (%s)", node, c.memberList()) {
		return cs
	}
	cs.add("stopped by the operator", c.Config.IsStopped(node), "stopped: %v (only what 'ctl stop' stopped is started)", c.Config.IsStopped(node))
	return cs
}

// DetachChecks are the conditions of `ctl detach NODE` (detach) or `ctl
// attach NODE`.
func DetachChecks(c Cluster, node string, detach bool) []Check {
	var cs checks
	if !cs.add("node known", c.known(node), "%q among the members (%s)", node, c.memberList()) {
		return cs
	}
	if !detach {
		cs.add("detached", c.Config.IsDetached(node), "detached: %v", c.Config.IsDetached(node))
		return cs
	}
	cs.add("not detached already", !c.Config.IsDetached(node), "detached: %v", c.Config.IsDetached(node))
	isLeader := c.Leader != nil && c.Leader.Name == node
	cs.add("not the primary", !isLeader, "leader key held by %q (switch over first)", leaderName(c))
	if !isLeader {
		cs.strictCapacity(c, node, "detaching")
	}
	return cs
}

// ReinitChecks are the conditions of `ctl reinit NODE`, from a base backup
// of the primary or (fromBackup) from the node's backup repository.
func ReinitChecks(c Cluster, node string, fromBackup bool) []Check {
	var cs checks
	m, ok := c.Members[node]
	if !cs.add("node known", ok, "%q publishes its status (members: %s); its agent must be running", node, c.memberList()) {
		return cs
	}
	cs.add("a primary to follow", c.Leader != nil, "leader key held by %q", leaderName(c))
	cs.add("not the primary", c.Leader == nil || c.Leader.Name != node, "%s (switch over first, then rebuild it)", node)
	cs.add("not a witness", m.Role != RoleWitness, "%s is %s", node, m.Role)
	cs.add("node not paused", !c.Config.IsNodePaused(node), "paused: %v (a paused node takes no step: 'pgguard ctl resume %s')", c.Config.IsNodePaused(node), node)
	if fromBackup {
		detail := "yes"
		if !m.Repository {
			detail = node + " has no backup repository (repository.url in its config): configure one and restart its agent, or reinit without --from-backup"
		}
		cs.add("node has a backup repository", m.Repository, "%s", detail)
	}
	cs.add("no rebuild of it under way", !c.Reinit[node], "reinit requested: %v", c.Reinit[node])
	cs.noOperation(c)
	cs.strictCapacity(c, node, "rebuilding")
	return cs
}

// RollingRestartChecks are the conditions of `ctl restart --rolling`:
// every member healthy, and a standby the primary can be switched over to.
func RollingRestartChecks(c Cluster) []Check {
	var cs checks
	if !cs.add("leader present", c.Leader != nil, "leader key held by %q", leaderName(c)) {
		return cs
	}
	cs.add("automatic failover on", !c.Config.Paused, "cluster paused: %v", c.Config.Paused)
	cs.noOperation(c)
	var sick []string
	for _, name := range c.MemberNames() {
		m := c.Members[name]
		if m.Role == RoleWitness {
			continue
		}
		if !m.Healthy || (m.Role != RolePrimary && !m.Streaming) {
			sick = append(sick, fmt.Sprintf("%s %s/%s", name, m.Role, m.State))
		}
	}
	detail := "all healthy, every standby streaming"
	if len(sick) > 0 {
		detail = "not healthy or not streaming: " + strings.Join(sick, ", ")
	}
	cs.add("every member healthy", len(sick) == 0, "%s", detail)
	to := BestSwitchoverCandidate(c, c.Leader.Name)
	detail = "none passes the switchover checks ('pgguard ctl switchover --check')"
	transient := false
	if to != "" {
		detail = to
	} else if near := NearestSwitchoverCandidate(c, c.Leader.Name); near != "" {
		// A standby whose only failing conditions pass by themselves
		// (catching up after a segment switch or a bulk load): the
		// operation may wait for it.
		failed := Failed(SwitchoverChecks(c, c.Leader.Name, near))
		detail = fmt.Sprintf("%s: %s: %s", near, failed[0].Name, failed[0].Detail)
		transient = true
	}
	cs.add("a switchover candidate", to != "", "%s", detail)
	cs[len(cs)-1].Transient = transient
	return cs
}

// ConfigChecks are the conditions of changing the run-time configuration
// to next (`ctl config`).
func ConfigChecks(c Cluster, next ClusterConfig) []Check {
	var cs checks
	err := next.Validate()
	cs.add("configuration valid", err == nil, "%s", errText(err, "mode "+string(next.Mode)))
	if next.Synchronous() {
		need, have := max(next.SyncCount, 1), syncLeft(c, "")
		ok := have >= need || next.Mode == ModeSync
		detail := fmt.Sprintf("%d standbys could acknowledge commits, %s mode waits for %d", have, next.Mode, need)
		if have < need && next.Mode == ModeSync {
			detail += fmt.Sprintf("; commits wait up to sync_timeout (%dms) and then go on without them", next.SyncTimeoutMs)
		}
		if have < need && next.Mode == ModeStrict {
			detail += " (below that, every commit waits)"
		}
		cs.add("enough synchronous standbys", ok, "%s", detail)
	}
	cs.noOperation(c)
	return cs
}

// RestoreClusterChecks are the conditions of `ctl restore-cluster` on node
// ("" picks the primary); the node it resolved to comes back with them.
func RestoreClusterChecks(c Cluster, node string) ([]Check, string) {
	var cs checks
	if node == "" {
		if !cs.add("a node to restore on", c.Leader != nil, "the cluster has no primary: name the node that restores it with --node") {
			return cs, ""
		}
		node = c.Leader.Name
	}
	m, ok := c.Members[node]
	if !cs.add("node known", ok, "%q publishes its status (members: %s); its agent must be running", node, c.memberList()) {
		return cs, node
	}
	detail := "yes"
	if !m.Repository {
		detail = node + " has no backup repository (repository.url in its config): configure one and restart its agent, or pick another node with --node"
	}
	cs.add("node has a backup repository", m.Repository, "%s", detail)
	cs.add("node is the primary", c.Leader == nil || c.Leader.Name == node, "leader key held by %q (switch over to %s first, or leave --node out)", leaderName(c), node)
	cs.noOperation(c)
	return cs, node
}

func errText(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// StopAllChecks are the conditions of `ctl stop --all` (standbys first,
// the primary last, nobody promoted).
func StopAllChecks(c Cluster) []Check {
	var cs checks
	cs.noOperation(c)
	cs.add("primary stop promotes nobody", true, "the primary %q keeps the leader key; writes stop until 'pgguard ctl start --all'", leaderName(c))
	return cs
}

// StartAllChecks are the conditions of `ctl start --all` (the primary
// first): none beyond what it starts.
func StartAllChecks(c Cluster) []Check {
	var cs checks
	cs.add("stopped by the operator", true, "%v (the others are running already)", c.Config.Stopped)
	return cs
}

// StoreVoter is one consensus-store member as the operator's command sees
// it, for RemoveChecks.
type StoreVoter struct {
	Name      string
	Reachable bool
}

// RemoveChecks are the conditions of `ctl remove NODE`: decommissioning a
// member for good. Its agent must be gone (a running agent would carry on
// and its store member would vote until the removal cut it off), it must
// not be the primary, and the store must keep a quorum without it.
func RemoveChecks(c Cluster, node string, store []StoreVoter) []Check {
	var cs checks
	inStore := false
	for _, v := range store {
		inStore = inStore || v.Name == node
	}
	isWitness := slices.Contains(c.Witnesses, node)
	if !cs.add("node known", c.known(node) || inStore || isWitness, "%q among the members (%s) or the store's", node, c.memberList()) {
		return cs
	}
	cs.add("removal", true, "%s", map[bool]string{true: "marked removed already: finishing an interrupted removal", false: "not removed yet"}[c.Config.IsRemoved(node)])
	cs.add("not the primary", c.Leader == nil || c.Leader.Name != node, "leader key held by %q", leaderName(c))
	_, live := c.Members[node]
	cs.add("its agent is gone", !live, "%s %s (stop its agent, 'systemctl stop pgguard' or the like, and wait one TTL)",
		node, map[bool]string{true: "still publishes its status", false: "publishes no status"}[live])
	if inStore {
		left, reachable := 0, 0
		for _, v := range store {
			if v.Name == node {
				continue
			}
			left++
			if v.Reachable {
				reachable++
			}
		}
		need := left/2 + 1
		cs.add("store keeps a quorum", left > 0 && reachable >= need,
			"%d of the %d remaining store members answer, a quorum of them is %d", reachable, left, need)
	} else {
		cs.add("store keeps a quorum", true, "%s votes in no store member (an external etcd, or never started)", node)
	}
	cs.noOperation(c)
	return cs
}

// AddChecks are the conditions of `ctl add NODE`: a new name, and a store
// that keeps its quorum while the new member has not started yet (etcd
// counts it as soon as it is added).
func AddChecks(c Cluster, node string, store []StoreVoter) []Check {
	var cs checks
	inStore, reachable := false, 0
	for _, v := range store {
		inStore = inStore || v.Name == node
		if v.Reachable {
			reachable++
		}
	}
	_, live := c.Members[node]
	cs.add("new name", !inStore && !live, "%q is %s", node, map[bool]string{true: "a member already", false: "not a member yet"}[inStore || live])
	after := len(store) + 1
	need := after/2 + 1
	cs.add("store keeps a quorum", reachable >= need,
		"%d of %d store members answer; with %s added but not started yet a quorum of %d is %d", reachable, len(store), node, after, need)
	cs.noOperation(c)
	return cs
}
