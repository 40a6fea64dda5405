package testcluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/status"
)

// Ack is one write the cluster acknowledged.
type Ack struct {
	ID   int64
	Time time.Time
}

// WriteProbe writes one row every Interval through a connection string
// that follows the primary, and records every acknowledged write.
type WriteProbe struct {
	DSN      string
	Interval time.Duration

	mu     sync.Mutex
	acks   []Ack
	errors int
	cancel context.CancelFunc
	done   chan struct{}
}

// StartWriteProbe creates the probe table and starts writing.
func StartWriteProbe(ctx context.Context, dsn string, interval time.Duration) (*WriteProbe, error) {
	conn, err := connectRW(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("write probe: %w", err)
	}
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS pgguard_probe (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`)
	conn.Close(context.Background())
	if err != nil {
		return nil, fmt.Errorf("write probe table: %w", err)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &WriteProbe{DSN: dsn, Interval: interval, cancel: cancel, done: make(chan struct{})}
	go p.run(pctx)
	return p, nil
}

func connectRW(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return pgx.Connect(cctx, dsn)
}

func (p *WriteProbe) run(ctx context.Context) {
	defer close(p.done)
	var conn *pgx.Conn
	// IDs are unique across probe runs on the same table.
	next := time.Now().UnixNano() / 1000
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if conn != nil {
				conn.Close(context.Background())
			}
			return
		case <-t.C:
		}
		if conn == nil {
			c, err := connectRW(ctx, p.DSN)
			if err != nil {
				p.mu.Lock()
				p.errors++
				p.mu.Unlock()
				continue
			}
			conn = c
		}
		id := next
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := conn.Exec(wctx, `INSERT INTO pgguard_probe (id) VALUES ($1)`, id)
		cancel()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			p.mu.Lock()
			p.errors++
			p.mu.Unlock()
			next++ // an unacknowledged id may or may not exist: never reuse it
			continue
		}
		next++
		p.mu.Lock()
		p.acks = append(p.acks, Ack{ID: id, Time: time.Now()})
		p.mu.Unlock()
	}
}

// Stop ends the probe and returns every acknowledged write.
func (p *WriteProbe) Stop() []Ack {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Ack(nil), p.acks...)
}

// Acks returns the writes acknowledged so far.
func (p *WriteProbe) Acks() []Ack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Ack(nil), p.acks...)
}

// AckedAfter reports whether the last acknowledged write came after t.
func (p *WriteProbe) AckedAfter(t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acks) > 0 && p.acks[len(p.acks)-1].Time.After(t)
}

// StartWrites starts a write probe through dsn, one write every interval,
// and waits (up to 10 s, for what) until more than n writes are
// acknowledged. The probe stops at cleanup if the test has not stopped it.
func (c *Cluster) StartWrites(what, dsn string, interval time.Duration, n int) *WriteProbe {
	c.t.Helper()
	writes, err := StartWriteProbe(context.Background(), dsn, interval)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { writes.Stop() })
	c.WaitFor(what, 10*time.Second, func(status.Report) bool { return len(writes.Acks()) > n })
	return writes
}

// KillPrimaryUnderWrites is a host loss of the primary old while writes
// run: it waits (up to 30 s, for what) until another node leads and a
// write more than a second after the kill is acknowledged. It returns that
// status report and when old was killed.
func (c *Cluster) KillPrimaryUnderWrites(writes *WriteProbe, old, what string) (status.Report, time.Time) {
	c.t.Helper()
	killed := time.Now()
	c.KillNode(old)
	r := c.WaitFor(what, 30*time.Second, func(r status.Report) bool {
		return r.Leader != "" && r.Leader != old && writes.AckedAfter(killed.Add(time.Second))
	})
	return r, killed
}

// CheckNoWriteLost fails the test when a write of acks is missing from the
// cluster's primary; what names what the writes went through ("sync mode",
// "rolling restart").
func (c *Cluster) CheckNoWriteLost(what string, acks []Ack) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	missing, err := MissingAcks(ctx, c.Layout.DSN(), acks)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(missing) > 0 {
		c.t.Fatalf("%s lost %d of %d acknowledged writes: %v", what, len(missing), len(acks), missing)
	}
}

// MaxGap is the longest time between two consecutive acknowledged writes
// at or after since.
func MaxGap(acks []Ack, since time.Time) time.Duration {
	var gap time.Duration
	var prev time.Time
	for _, a := range acks {
		if !prev.IsZero() && a.Time.After(since) && a.Time.Sub(prev) > gap {
			gap = a.Time.Sub(prev)
		}
		prev = a.Time
	}
	return gap
}

// MissingAcks returns the acknowledged ids that are not in the probe table
// reachable through dsn.
func MissingAcks(ctx context.Context, dsn string, acks []Ack) ([]int64, error) {
	conn, err := connectRW(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT id FROM pgguard_probe`)
	if err != nil {
		return nil, err
	}
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		have[id] = true
	}
	rows.Close()
	var missing []int64
	for _, a := range acks {
		if !have[a.ID] {
			missing = append(missing, a.ID)
		}
	}
	return missing, rows.Err()
}

// Writability is what one probe round saw of one node.
type Writability struct {
	Node     string
	Time     time.Time
	Writable bool
}

// NodeProbe checks every node every Interval for whether it would accept a
// write (it can assign a transaction id), one round at a time.
type NodeProbe struct {
	mu     sync.Mutex
	rounds [][]Writability
	cancel context.CancelFunc
	done   chan struct{}
}

// StartNodeProbe probes nodes (name → connection string).
func StartNodeProbe(ctx context.Context, nodes map[string]string, interval time.Duration) *NodeProbe {
	pctx, cancel := context.WithCancel(ctx)
	p := &NodeProbe{cancel: cancel, done: make(chan struct{})}
	go p.run(pctx, nodes, interval)
	return p
}

func (p *NodeProbe) run(ctx context.Context, nodes map[string]string, interval time.Duration) {
	defer close(p.done)
	var mu sync.Mutex
	conns := map[string]*pgx.Conn{}
	connecting := map[string]bool{}
	var connects sync.WaitGroup
	defer func() {
		connects.Wait()
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	// A connection takes a SCRAM exchange and a backend fork: far longer
	// than a round on a busy machine. It is made beside the rounds, which
	// count the node as not writable until it is there.
	connect := func(n string) {
		defer connects.Done()
		cctx, cancel := context.WithTimeout(ctx, probeConnectTimeout)
		c, err := pgx.Connect(cctx, nodes[n])
		cancel()
		mu.Lock()
		defer mu.Unlock()
		connecting[n] = false
		if err == nil {
			conns[n] = c
		}
	}
	// A query waits at most this long: a round is a snapshot only if it is
	// short, yet a busy machine must not make a primary look fenced.
	queryTimeout := max(interval, probeQueryTimeout)
	names := slices.Sorted(maps.Keys(nodes))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		round := make([]Writability, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			mu.Lock()
			c := conns[n]
			if c == nil && !connecting[n] {
				connecting[n] = true
				connects.Add(1)
				go connect(n)
			}
			mu.Unlock()
			if c == nil {
				round[i] = Writability{Node: n, Time: time.Now()}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				qctx, cancel := context.WithTimeout(ctx, queryTimeout)
				// Assigning a transaction id is what every write needs and
				// what a standby or a fenced node cannot do.
				_, err := c.Exec(qctx, `BEGIN; SELECT txid_current(); ROLLBACK`)
				cancel()
				round[i] = Writability{Node: n, Time: time.Now(), Writable: err == nil}
				if err != nil {
					c.Close(context.Background())
					mu.Lock()
					delete(conns, n)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		p.mu.Lock()
		p.rounds = append(p.rounds, round)
		p.mu.Unlock()
	}
}

const (
	probeConnectTimeout = 5 * time.Second
	probeQueryTimeout   = 250 * time.Millisecond
)

// Stop ends probing.
func (p *NodeProbe) Stop() {
	p.cancel()
	<-p.done
}

// SplitBrain lists the rounds in which more than one node was writable.
func (p *NodeProbe) SplitBrain() [][]Writability {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]Writability
	for _, r := range p.rounds {
		n := 0
		for _, w := range r {
			if w.Writable {
				n++
			}
		}
		if n > 1 {
			out = append(out, r)
		}
	}
	return out
}

// LastWritable is the last time node was seen writable (zero if never).
func (p *NodeProbe) LastWritable(node string) time.Time {
	return p.find(node, true)
}

// FirstWritable is the first time node was seen writable (zero if never).
func (p *NodeProbe) FirstWritable(node string) time.Time {
	return p.find(node, false)
}

func (p *NodeProbe) find(node string, last bool) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var at time.Time
	for _, r := range p.rounds {
		for _, w := range r {
			if w.Node == node && w.Writable {
				if !last {
					return w.Time
				}
				at = w.Time
			}
		}
	}
	return at
}

// Rounds is the number of probe rounds done.
func (p *NodeProbe) Rounds() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rounds)
}
