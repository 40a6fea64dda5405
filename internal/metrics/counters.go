package metrics

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
)

// Counters are the totals of what this agent did since it started: the
// history events it recorded, its promotions and fences, the job runs it
// executed. Prometheus sees a restart as a counter reset.
type Counters struct {
	mu     sync.Mutex
	events map[ha.Kind]uint64
	runs   map[runKey]uint64
	// promotions by kind (failover, switchover), and the duration of the
	// last one of each kind (absent until one was measured).
	promotions map[string]uint64
	lastTook   map[string]time.Duration
	fences     uint64
	// restores counts the restore_command calls the agent served, by
	// answer (found, missing, error).
	restores map[string]uint64
}

type runKey struct{ kind, result string }

// NewCounters starts every total at zero.
func NewCounters() *Counters {
	return &Counters{events: map[ha.Kind]uint64{}, runs: map[runKey]uint64{},
		promotions: map[string]uint64{"failover": 0, "switchover": 0}, lastTook: map[string]time.Duration{},
		restores: map[string]uint64{}}
}

// Event counts one history event this agent recorded. leaderless is when
// this node first saw the cluster without a leader (zero when it does not
// know): a promotion's duration is measured from there to the
// promotion's end, the time the cluster went without a primary as the
// new primary saw it.
func (c *Counters) Event(e dcs.Event, leaderless time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events[e.Action]++
	switch e.Action {
	case ha.Fence:
		c.fences++
	case ha.Promote:
		if !strings.HasPrefix(e.Result, "ok") {
			return
		}
		// A takeover is an operator's failover: the old primary did not
		// hand over.
		kind := "failover"
		if e.Reason == ha.PromoteSwitchover {
			kind = "switchover"
		}
		c.promotions[kind]++
		if !leaderless.IsZero() && e.Time.After(leaderless) {
			c.lastTook[kind] = e.Time.Sub(leaderless)
		}
	}
}

// JobRun counts one run this agent executed, by its job's kind and how it
// ended.
func (c *Counters) JobRun(kind jobs.Kind, result jobs.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[runKey{string(kind), string(result)}]++
}

// RestoreCommand counts one restore_command call the agent served:
// answer is "found", "missing" or "error".
func (c *Counters) RestoreCommand(answer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restores[answer]++
}

func (c *Counters) collect(e emitter, d descs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	actions := make([]string, 0, len(c.events))
	for a := range c.events {
		actions = append(actions, string(a))
	}
	sort.Strings(actions)
	for _, a := range actions {
		e.counter(d.events, float64(c.events[ha.Kind(a)]), a)
	}
	e.counter(d.failovers, float64(c.promotions["failover"]))
	e.counter(d.switchovers, float64(c.promotions["switchover"]))
	if took, ok := c.lastTook["failover"]; ok {
		e.gauge(d.lastFailover, took.Seconds())
	}
	if took, ok := c.lastTook["switchover"]; ok {
		e.gauge(d.lastSwitchover, took.Seconds())
	}
	e.counter(d.fences, float64(c.fences))
	for k, n := range c.runs {
		e.counter(d.jobRuns, float64(n), k.kind, k.result)
	}
	for answer, n := range c.restores {
		e.counter(d.restores, float64(n), answer)
	}
}
