package alerts

import (
	"slices"
	"sort"
	"time"
)

// watch follows the conditions handed in by Observe: each is sent once it
// has held for its For, and resolved when a later check of its kind no
// longer finds it. Pure: the time is handed in.
type watch struct {
	cluster string
	// held is every condition seen holding, by key: since when, and
	// whether it was passed on to be sent (then its resolution is too).
	held map[string]heldCondition
}

type heldCondition struct {
	since  time.Time
	alert  Alert
	passed bool
}

func newWatch(cluster string) *watch {
	return &watch{cluster: cluster, held: map[string]heldCondition{}}
}

// observe takes the conditions of kinds that hold at now and returns what
// to raise: the ones held long enough (de-duplication decides whether
// they are sent again), and the resolutions of those passed on before
// that no longer hold. A kind not in kinds was not checked: its
// conditions stay as they are.
func (w *watch) observe(now time.Time, kinds []Kind, holding []Alert) []Alert {
	seen := map[string]bool{}
	var out []Alert
	for _, a := range holding {
		if !slices.Contains(kinds, a.Kind) {
			continue
		}
		a.Condition = true
		key := Key(a.Kind, w.cluster, a.Subject)
		seen[key] = true
		h, ok := w.held[key]
		if !ok {
			h.since = now
		}
		h.alert = a
		if now.Sub(h.since) >= a.For {
			h.passed = true
			out = append(out, a)
		}
		w.held[key] = h
	}
	gone := make([]string, 0, len(w.held))
	for key, h := range w.held {
		if !seen[key] && slices.Contains(kinds, h.alert.Kind) {
			gone = append(gone, key)
		}
	}
	sort.Strings(gone)
	for _, key := range gone {
		h := w.held[key]
		delete(w.held, key)
		if h.passed {
			a := h.alert
			a.Resolved, a.Time, a.Summary = true, now, "resolved: "+a.Summary
			out = append(out, a)
		}
	}
	return out
}

// forget drops everything observed, unsent: another member sends the
// cluster-wide conditions now.
func (w *watch) forget() { clear(w.held) }
