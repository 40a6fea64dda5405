package ha

import (
	"fmt"
	"time"
)

// ReplayRequest is an operator's hold on one standby's replay (`ctl
// replay NODE`): replay up to Until and pause there, or pause now (Pause)
// and later resume. While a request is in force the standby is delayed:
// never promoted automatically, never synchronous.
type ReplayRequest struct {
	Until time.Time `json:"until,omitzero"`
	Pause bool      `json:"pause,omitempty"`
}

// Delayed reports whether this node deliberately replays behind the
// primary: a configured apply delay, or a replay request of the operator.
func Delayed(o Observation) bool {
	_, held := o.Cluster.Replay[o.Self]
	return o.Settings.ApplyDelay > 0 || held
}

// replayPlan carries out the operator's replay request on a running
// standby (nil when nothing is to do): a new recovery target needs a
// restart (PostgreSQL reads it only at start), a pause or resume is one
// call. Without a request, a target left in force is removed and a pause
// released.
func replayPlan(o Observation, leader string) Plan {
	l := o.Local
	req, held := o.Cluster.Replay[o.Self]
	switch {
	case !req.Until.Equal(l.ReplayTarget):
		why := "replay request withdrawn: back to normal replay"
		if !req.Until.IsZero() {
			why = fmt.Sprintf("operator: replay up to %s and pause there (restart with the recovery target)", req.Until.UTC().Format(time.RFC3339))
		}
		return Plan{{Kind: SetReplayTarget, Target: leader, Until: req.Until, Reason: why}}
	case held && req.Pause && !l.ReplayPaused:
		return Plan{{Kind: PauseReplay, Reason: "operator: pause replay"}}
	case (!held || (!req.Pause && req.Until.IsZero())) && l.ReplayPaused:
		return Plan{{Kind: ResumeReplay, Reason: "operator: resume replay"}}
	}
	return nil
}
