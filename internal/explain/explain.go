// Package explain turns the cluster history into one timeline of a
// failover or switchover across every node: the story an operator would
// otherwise stitch together from several hosts' logs. It only reads events;
// it never writes to the store.
package explain

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// Episode is the stretch of history around one change of primary.
type Episode struct {
	Kind   string      `json:"kind"` // "failover" or "switchover"
	From   string      `json:"from"`
	To     string      `json:"to"`
	Start  time.Time   `json:"start"`
	End    time.Time   `json:"end"`
	Events []dcs.Event `json:"events"`
}

// anchors are the events that end an episode: a new primary.
func isPromotion(e dcs.Event) bool {
	return e.Action == ha.Promote && strings.HasPrefix(e.Result, "ok")
}

// Find returns the episode ending in the promotion whose history key ends
// with id, or the last one when id is "" or "last".
func Find(events []dcs.Event, id string) (Episode, error) {
	anchor := -1
	for i, e := range events {
		if !isPromotion(e) {
			continue
		}
		if id == "" || id == "last" || strings.HasSuffix(e.Key, id) {
			anchor = i
		}
	}
	if anchor < 0 {
		if id == "" || id == "last" {
			return Episode{}, fmt.Errorf("the history holds no promotion: nothing to explain")
		}
		return Episode{}, fmt.Errorf("no promotion with id %q in the history ('pgguard ctl history' lists ids)", id)
	}
	to := events[anchor]
	// The episode starts at the first sign of trouble or request after
	// the previous promotion (at most two minutes earlier); failing that,
	// at the winner taking the leader key.
	startIdx := -1
	for i := anchor - 1; i >= 0; i-- {
		e := events[i]
		if isPromotion(e) || to.Time.Sub(e.Time) > 2*time.Minute {
			break
		}
		if startsEpisode(e) {
			startIdx = i
		}
	}
	if startIdx < 0 {
		startIdx = anchor
		for i := anchor - 1; i >= 0 && to.Time.Sub(events[i].Time) < 10*time.Second; i-- {
			if events[i].Node == to.Node && events[i].Action == ha.AcquireLeader {
				startIdx = i
				break
			}
		}
	}
	endIdx := anchor
	for i := anchor + 1; i < len(events); i++ {
		e := events[i]
		if isPromotion(e) || e.Time.Sub(to.Time) > time.Minute {
			break
		}
		endIdx = i
	}
	ep := Episode{Kind: "failover", To: to.Node, Start: events[startIdx].Time, End: events[endIdx].Time, Events: events[startIdx : endIdx+1]}
	for _, e := range ep.Events {
		switch e.Action {
		case ha.EventSwitchoverRequest, ha.EventSwitchoverStop, ha.HandOver:
			ep.Kind = "switchover"
			if e.Action != ha.EventSwitchoverRequest {
				ep.From = e.Node
			}
		case ha.EventLeaderLost:
			if ep.From == "" {
				ep.From = e.Target
			}
		}
	}
	return ep, nil
}

// startsEpisode reports whether e is a first sign of a change of primary.
func startsEpisode(e dcs.Event) bool {
	switch e.Action {
	case ha.EventLeaderLost, ha.EventPostmasterExit, ha.EventHealthCheckFailed, ha.Fence, ha.ReleaseLeader,
		ha.EventSwitchoverRequest, ha.EventSwitchoverStop, ha.HandOver:
		return true
	}
	return false
}

// Write prints the episode as a timeline, times relative to its start.
func (ep Episode) Write(w io.Writer) {
	from := ep.From
	if from == "" {
		from = "?"
	}
	fmt.Fprintf(w, "%s %s → %s, %s, took %s\n", ep.Kind, from, ep.To, ep.Start.Format("2006-01-02 15:04:05.000 MST"),
		ep.End.Sub(ep.Start).Round(time.Millisecond))
	for _, e := range ep.Events {
		fmt.Fprintf(w, "  +%8.3fs  %s\n", e.Time.Sub(ep.Start).Seconds(), eventLine(e))
	}
}

// WriteHistory prints history entries one per line, oldest first, each
// with its id (the last part of its key).
func WriteHistory(out io.Writer, events []dcs.Event) error {
	for _, e := range events {
		fmt.Fprintf(out, "%s  %s  id=%s\n", e.Time.Format("2006-01-02 15:04:05.000"), eventLine(e), e.Key[strings.LastIndex(e.Key, "/")+1:])
	}
	return nil
}

// eventLine is what both listings say of an event: its node, action,
// target, reason, who asked and result.
func eventLine(e dcs.Event) string {
	target, by := "", ""
	if e.Target != "" {
		target = " → " + e.Target
	}
	if e.By != "" {
		by = " (by " + e.By + ")"
	}
	return fmt.Sprintf("%-4s %-20s%s  %s%s  [%s]", e.Node, e.Action, target, e.Reason, by, e.Result)
}
