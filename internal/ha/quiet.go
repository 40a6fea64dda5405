package ha

// Quiet reports whether cur, a serializable read of the store (the local
// member's state, without asking the raft leader), may stand in for a
// linearizable read this loop. prev is the last view read linearizably
// or accepted as quiet; leaderLost is whether the agent is in a leader
// election.
//
// A quiet view shows the same leader key (name and revision) as prev and
// no operator request, outside an election. Deciding on it can only be
// late, never unsafe: every step that could make a second primary or
// lose a commit is a transaction that compares revisions (taking,
// renewing or releasing the leader key, the sync key, clearing a
// request), and a primary keeps running only while linearizable lease
// renewals succeed. Anything else, including a view the local member has
// not caught up on, is read again linearizably before Decide sees it.
func Quiet(prev, cur Cluster, leaderLost bool) bool {
	switch {
	case leaderLost, prev.SystemID == "", cur.SystemID != prev.SystemID:
		return false
	case prev.Leader == nil || cur.Leader == nil || *prev.Leader != *cur.Leader:
		return false
	case cur.Switchover != nil || cur.Takeover != nil || cur.Restore != nil || len(cur.Reinit) > 0 || len(cur.Replay) > 0:
		return false
	case cur.Revision < prev.Revision:
		// The local member is behind what this agent already saw.
		return false
	}
	return true
}
