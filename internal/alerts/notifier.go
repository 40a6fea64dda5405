package alerts

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Clock is the notifier's time: real, or a fake in tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Notifier.
type Options struct {
	// Cluster and Node stamp every message (Node: this sender).
	Cluster, Node string
	Sinks         []Sink
	// RepeatInterval is the de-duplication window (Dedup).
	RepeatInterval time.Duration
	// RetryFor bounds the retries of one message to one sink; Backoff
	// spaces them (zero: 1 s doubling up to 1 min).
	RetryFor time.Duration
	Backoff  Backoff
	// AttemptTimeout bounds one attempt (default 30 s; sinks have their
	// own, shorter timeouts).
	AttemptTimeout time.Duration
	// QueueSize bounds the messages waiting for each sink (default 64);
	// the oldest is dropped when a new one finds the queue full.
	QueueSize int
	Scrub     *Scrubber
	Clock     Clock
	Log       *slog.Logger
}

// Backoff is the wait before retry n (1, 2, ...): Initial doubled each
// time, at most Max.
type Backoff struct {
	Initial, Max time.Duration
}

// Wait returns the wait before retry n.
func (b Backoff) Wait(n int) time.Duration {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = time.Minute
	}
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Stats count what the notifier did since it started.
type Stats struct {
	// Raised alerts reached de-duplication (an event once, a condition
	// at every check that found it held long enough); Suppressed were
	// held back by it; Dropped never got there (the intake was full).
	Raised, Suppressed, Dropped uint64
	// Sinks by name.
	Sinks map[string]SinkStats
}

// SinkStats count one sink's deliveries: messages Sent, attempts Failed,
// messages GivenUp after their retries and Dropped from a full queue.
type SinkStats struct {
	Sent, Failed, GivenUp, Dropped uint64
}

// Notifier turns raised alerts into messages for every sink: it
// de-duplicates, scrubs, and delivers each message to each sink in that
// sink's own goroutine, retrying with backoff. Raise and Observe never
// block.
type Notifier struct {
	o      Options
	in     chan input
	queues []*queue
	// raised, suppressed and dropped are Stats' first three.
	raised, suppressed, dropped atomic.Uint64
}

// input is one Raise or Observe.
type input struct {
	alert   Alert
	observe bool
	at      time.Time
	kinds   []Kind
	holding []Alert
	sender  bool
}

// New prepares a notifier; Run starts it.
func New(o Options) *Notifier {
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 30 * time.Second
	}
	if o.RetryFor <= 0 {
		o.RetryFor = 10 * time.Minute
	}
	if o.RepeatInterval <= 0 {
		o.RepeatInterval = time.Hour
	}
	n := &Notifier{o: o, in: make(chan input, 256)}
	for _, s := range o.Sinks {
		n.queues = append(n.queues, &queue{sink: s, max: o.QueueSize, wake: make(chan struct{}, 1)})
	}
	return n
}

// Raise hands in an alert (or a resolution: Alert.Resolved). It never
// blocks: when the intake is full the alert is dropped and counted.
func (n *Notifier) Raise(a Alert) {
	n.offer(input{alert: a})
}

// Observe hands in the cluster-wide conditions of kinds that hold at
// (when they were read; see Conditions): each is sent once it has held
// for its For, and one sent before that a later check of its kind no
// longer finds is resolved. sender false: another member sends the
// cluster-wide conditions: what this one observed is forgotten, unsent.
// It never blocks.
func (n *Notifier) Observe(at time.Time, kinds []Kind, holding []Alert, sender bool) {
	n.offer(input{observe: true, at: at, kinds: kinds, holding: holding, sender: sender})
}

func (n *Notifier) offer(in input) {
	select {
	case n.in <- in:
	default:
		n.dropped.Add(1)
	}
}

// Run de-duplicates and delivers until ctx ends; messages still queued
// then are dropped.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range n.queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.deliverAll(ctx, q)
		}()
	}
	dedup := NewDedup(n.o.RepeatInterval)
	conditions := newWatch(n.o.Cluster)
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case in := <-n.in:
			now := n.o.Clock.Now()
			raised := []Alert{in.alert}
			if in.observe {
				if !in.sender {
					conditions.forget()
					continue
				}
				raised = conditions.observe(in.at, in.kinds, in.holding)
			}
			for _, a := range raised {
				n.raise(dedup, a, now)
			}
		}
	}
}

func (n *Notifier) raise(dedup *Dedup, a Alert, now time.Time) {
	n.raised.Add(1)
	key := Key(a.Kind, n.o.Cluster, a.Subject)
	send := false
	if a.Resolved {
		send = dedup.Resolve(key, now)
	} else {
		send = dedup.Fire(key, a.Severity, a.Condition, now)
	}
	if !send {
		n.suppressed.Add(1)
		return
	}
	if a.Time.IsZero() {
		a.Time = now
	}
	m := Message{Version: 1, Cluster: n.o.Cluster, Node: n.o.Node, Kind: a.Kind, Severity: a.Severity, Status: Firing,
		Summary: n.o.Scrub.Text(a.Summary), Details: n.o.Scrub.Text(a.Details), Time: a.Time.UTC(), Key: key}
	if a.Resolved {
		m.Status = Resolved
	}
	n.o.Log.Info("alert", "kind", m.Kind, "severity", m.Severity, "status", m.Status, "key", m.Key, "summary", m.Summary)
	for _, q := range n.queues {
		q.push(m, now)
	}
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	s := Stats{Raised: n.raised.Load(), Suppressed: n.suppressed.Load(), Dropped: n.dropped.Load(), Sinks: map[string]SinkStats{}}
	for _, q := range n.queues {
		s.Sinks[q.sink.Name()] = SinkStats{Sent: q.sent.Load(), Failed: q.failed.Load(), GivenUp: q.givenUp.Load(), Dropped: q.dropped.Load()}
	}
	return s
}

// queue holds the messages waiting for one sink, oldest first.
type queue struct {
	sink Sink
	max  int
	wake chan struct{}

	mu    sync.Mutex
	items []pending

	sent, failed, givenUp, dropped atomic.Uint64
}

type pending struct {
	msg   Message
	since time.Time
}

func (q *queue) push(m Message, now time.Time) {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.items = q.items[1:]
		q.dropped.Add(1)
	}
	q.items = append(q.items, pending{msg: m, since: now})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) pop() (pending, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return pending{}, false
	}
	p := q.items[0]
	q.items = q.items[1:]
	return p, true
}

// deliverAll sends q's messages one after another, each retried until it
// is sent, fails for good, or has been tried for RetryFor.
func (n *Notifier) deliverAll(ctx context.Context, q *queue) {
	for {
		p, ok := q.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		if !n.deliver(ctx, q, p) {
			return
		}
	}
}

// deliver tries one message on one sink; false when ctx ended.
func (n *Notifier) deliver(ctx context.Context, q *queue, p pending) bool {
	log := n.o.Log.With("receiver", q.sink.Name(), "kind", p.msg.Kind, "key", p.msg.Key)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, n.o.AttemptTimeout)
		err := q.sink.Send(actx, p.msg)
		cancel()
		if err == nil {
			q.sent.Add(1)
			log.Info("alert sent", "attempt", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		q.failed.Add(1)
		why := n.o.Scrub.Text(err.Error())
		wait := n.o.Backoff.Wait(attempt)
		if IsPermanent(err) {
			q.givenUp.Add(1)
			log.Error("alert not sent: the receiver refused it; not retried", "attempt", attempt, "err", why)
			return true
		}
		if n.o.Clock.Now().Add(wait).Sub(p.since) > n.o.RetryFor {
			q.givenUp.Add(1)
			log.Error("alert not sent: giving up after alerts.retry_for", "attempts", attempt, "retry_for", n.o.RetryFor, "err", why)
			return true
		}
		log.Warn("alert not sent: retrying", "attempt", attempt, "retry_in", wait, "err", why)
		select {
		case <-ctx.Done():
			return false
		case <-n.o.Clock.After(wait):
		}
	}
}
