package alerts

import "time"

// Dedup decides whether an alert is sent again. The same key is sent once
// per window: again only when the window has passed, when it grew more
// severe (a disk that went from warn to critical), or when it resolved
// and came back. A resolution is sent only for a key that was firing.
// Pure: the time is handed in. The memory is one agent's and lasts as
// long as the agent does.
type Dedup struct {
	window time.Duration
	seen   map[string]dedupEntry
	pruned time.Time
}

type dedupEntry struct {
	sent      time.Time
	severity  Severity
	condition bool
	resolved  bool
}

// NewDedup de-duplicates over window.
func NewDedup(window time.Duration) *Dedup {
	return &Dedup{window: window, seen: map[string]dedupEntry{}}
}

// Fire reports whether an alert of key and severity, raised at now, is to
// be sent, and remembers it when it is.
func (d *Dedup) Fire(key string, sev Severity, condition bool, now time.Time) bool {
	d.prune(now)
	e, ok := d.seen[key]
	if ok && !e.resolved && now.Sub(e.sent) < d.window && sev.rank() <= e.severity.rank() {
		return false
	}
	d.seen[key] = dedupEntry{sent: now, severity: sev, condition: condition}
	return true
}

// Resolve reports whether the resolution of key is to be sent: only when
// the key was firing, and then once.
func (d *Dedup) Resolve(key string, now time.Time) bool {
	d.prune(now)
	e, ok := d.seen[key]
	if !ok || e.resolved {
		return false
	}
	e.resolved, e.sent = true, now
	d.seen[key] = e
	return true
}

// prune forgets, once per window, what no longer holds anything back: a
// one-off event or a resolution older than the window. A condition still
// firing is kept, however old: its resolution must still be sent.
func (d *Dedup) prune(now time.Time) {
	if now.Sub(d.pruned) < d.window {
		return
	}
	d.pruned = now
	for k, e := range d.seen {
		if (!e.condition || e.resolved) && now.Sub(e.sent) >= d.window {
			delete(d.seen, k)
		}
	}
}
