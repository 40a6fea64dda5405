package ha

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// slotsAction keeps one physical slot on the primary for every other
// member, except a member that is gone and has not streamed from this
// primary for longer than slot_retention: the WAL its slot holds back grows without
// bound while it is away, and one lost standby must not fill the primary's
// disk. Its slot is dropped (the step records which and why); when it
// returns it gets a new slot and catches up from the archive, or is
// rebuilt.
func slotsAction(o Observation) Action {
	keep, expired := SlotMembers(o)
	a := Action{Kind: EnsureSlots, Members: keep}
	if len(expired) > 0 {
		a.Reason = fmt.Sprintf("drop the slots of %s: not streaming for longer than slot_retention (%s)", strings.Join(expired, ", "), o.Settings.SlotRetention)
	}
	if victim, why := diskCriticalSlot(o, keep); victim != "" {
		var rest []string
		for _, k := range keep {
			if k != victim {
				rest = append(rest, k)
			}
		}
		a.Members, a.Reason = rest, why
	}
	return a
}

// SlotMembers splits the other members into those whose slot the primary
// keeps and those whose slot has expired: a member that publishes no
// status (it is gone) and has not streamed for longer than slot_retention.
// A member that publishes again gets its slot back at once (it needs one
// to stream; PostgreSQL's max_slot_wal_keep_size bounds what a member that
// publishes but never streams can hold). A member's absence is counted
// from the last time it streamed from this primary, or from when this node
// became primary if it never did (so a new primary, or a restarted agent,
// gives every member a full slot_retention). A slot_retention of zero
// keeps every slot.
func SlotMembers(o Observation) (keep, expired []string) {
	streaming := map[string]bool{}
	for _, s := range o.Local.Streamers {
		streaming[s] = true
	}
	for _, name := range o.Peers {
		if name == o.Self {
			continue
		}
		_, present := o.Cluster.Members[name]
		if o.Settings.SlotRetention > 0 && !streaming[name] && !present {
			since := o.Memory.LastStreaming[name]
			if since.IsZero() {
				since = o.Memory.PrimarySince
			}
			if !since.IsZero() && o.Now.Sub(since) > o.Settings.SlotRetention {
				expired = append(expired, name)
				continue
			}
		}
		keep = append(keep, name)
	}
	sort.Strings(keep)
	sort.Strings(expired)
	return keep, expired
}

// DefaultSlotRetention is how long a primary keeps WAL for a member that
// does not stream, unless ha.slot_retention says otherwise.
const DefaultSlotRetention = 4 * time.Hour
