package ha

import (
	"fmt"
	"slices"
	"strings"
)

// IsNodePaused reports whether the operator paused member alone (`ctl
// pause NODE`).
func (c ClusterConfig) IsNodePaused(member string) bool {
	return slices.Contains(c.PausedNodes, member)
}

// whilePaused are the steps a paused node still takes: a primary that runs
// keeps its role (renews its lease, keeps its slots and sync set, hands
// over in a switchover), and every node still fences itself when safety
// demands it. Everything that would change the node — start, restart,
// promotion, campaign, rewind, rebuild — waits for `ctl resume NODE`.
var whilePaused = map[Kind]bool{
	RenewLeader: true, EnsureSlots: true, SetSyncKey: true, SetSyncNames: true, MoveStoreLead: true,
	Fence: true, ReleaseLeader: true, HandOver: true, ClearSwitchover: true, Wait: true,
}

// pausedPlan filters the plan of a node the operator paused. A paused
// primary whose PostgreSQL does not run as a healthy primary stops renewing
// its lease, so that the rest of the cluster fails over as it would without
// the pause.
func pausedPlan(o Observation, plan Plan) Plan {
	l := o.Local
	running := l.Running && l.Healthy && !l.InRecovery
	var out Plan
	var held []string
	for _, a := range plan {
		switch {
		case a.Kind == RenewLeader && !running:
			held = append(held, string(a.Kind))
		case whilePaused[a.Kind]:
			out = append(out, a)
		default:
			held = append(held, string(a.Kind))
		}
	}
	if len(held) > 0 {
		out = append(out, Action{Kind: Wait, Reason: fmt.Sprintf("node paused by the operator ('pgguard ctl resume %s'): not taking %s",
			o.Self, strings.Join(held, ", "))})
	}
	if len(out) == 0 {
		out = Plan{{Kind: Wait, Reason: fmt.Sprintf("node paused by the operator ('pgguard ctl resume %s')", o.Self)}}
	}
	return out
}
