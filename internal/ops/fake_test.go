package ops

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// fakeStore is an in-memory store; agents is called on every Load and
// plays the nodes' part (carrying out requests).
type fakeStore struct {
	mu      sync.Mutex
	c       ha.Cluster
	history []dcs.Event
	voters  []dcs.StoreMember
	agents  func(f *fakeStore)
	writes  int // request and configuration writes
	removed []string
}

func (f *fakeStore) Load(context.Context) (ha.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.agents != nil {
		f.agents(f)
	}
	f.c.Revision++
	return f.c, nil
}

func (f *fakeStore) LeaderLease(context.Context) (time.Duration, error) { return 4 * time.Second, nil }
func (f *fakeStore) Members(context.Context) ([]dcs.StoreMember, error) { return f.voters, nil }

func (f *fakeStore) History(_ context.Context, since time.Time) ([]dcs.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dcs.Event
	for _, e := range f.history {
		if !e.Time.Before(since) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeStore) AppendHistory(_ context.Context, e dcs.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appendLocked(e)
	return nil
}

func (f *fakeStore) appendLocked(e dcs.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	f.history = append(f.history, e)
}

func (f *fakeStore) UpdateConfig(_ context.Context, edit func(*ha.ClusterConfig) error) (ha.ClusterConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := f.c.Config
	if err := edit(&next); err != nil {
		return next, err
	}
	if err := next.Validate(); err != nil {
		return next, err
	}
	f.c.Config = next
	f.writes++
	return next, nil
}

func (f *fakeStore) request(fn func(c *ha.Cluster)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.c)
	f.writes++
	return nil
}

func (f *fakeStore) RequestSwitchover(_ context.Context, sw ha.Switchover) error {
	return f.request(func(c *ha.Cluster) { c.Switchover = &sw })
}
func (f *fakeStore) CancelSwitchover(context.Context) error {
	return f.request(func(c *ha.Cluster) { c.Switchover = nil })
}
func (f *fakeStore) RequestTakeover(_ context.Context, tk ha.Takeover) error {
	return f.request(func(c *ha.Cluster) { c.Takeover = &tk })
}
func (f *fakeStore) RequestReinit(_ context.Context, node string, _ bool, _ int64) error {
	return f.request(func(c *ha.Cluster) {
		if c.Reinit == nil {
			c.Reinit = map[string]bool{}
		}
		c.Reinit[node] = true
	})
}
func (f *fakeStore) RequestClusterRestore(_ context.Context, r ha.ClusterRestore) error {
	return f.request(func(c *ha.Cluster) { c.Restore = &r })
}
func (f *fakeStore) CancelClusterRestore(context.Context) error {
	return f.request(func(c *ha.Cluster) { c.Restore = nil })
}
func (f *fakeStore) SetReplay(_ context.Context, node string, req ha.ReplayRequest) error {
	return f.request(func(c *ha.Cluster) {
		if c.Replay == nil {
			c.Replay = map[string]ha.ReplayRequest{}
		}
		c.Replay[node] = req
	})
}
func (f *fakeStore) CancelReplay(_ context.Context, node string) error {
	return f.request(func(c *ha.Cluster) { delete(c.Replay, node) })
}
func (f *fakeStore) MoveStoreLeader(context.Context, string) error {
	return f.request(func(*ha.Cluster) {})
}
func (f *fakeStore) RemoveNode(_ context.Context, node string) (dcs.RemoveResult, error) {
	f.removed = append(f.removed, node)
	return dcs.RemoveResult{}, f.request(func(c *ha.Cluster) { delete(c.Members, node) })
}
func (f *fakeStore) AddNode(context.Context, string, string) (dcs.AddResult, error) {
	return dcs.AddResult{}, errors.New("not in the fake")
}

// healthy is a three-node cluster: n1 leads, n2 and n3 stream from it.
func healthy() *fakeStore {
	c := ha.Cluster{
		Leader: &ha.Leader{Name: "n1"},
		Members: map[string]ha.Member{
			"n1": {Name: "n1", Role: ha.RolePrimary, State: "running", Healthy: true, WalLSN: 0x5000000},
			"n2": {Name: "n2", Role: ha.RoleStandby, State: "running", Healthy: true, Streaming: true, Following: "n1", ReceivedLSN: 0x5000000, ReplayedLSN: 0x5000000},
			"n3": {Name: "n3", Role: ha.RoleStandby, State: "running", Healthy: true, Streaming: true, Following: "n1", ReceivedLSN: 0x4fff000, ReplayedLSN: 0x4fff000},
		},
		Optime: 0x5000000,
		Config: ha.DefaultClusterConfig(),
	}
	var voters []dcs.StoreMember
	for _, n := range []string{"n1", "n2", "n3"} {
		voters = append(voters, dcs.StoreMember{Name: n, Reachable: true})
	}
	return &fakeStore{c: c, voters: voters}
}

func newOps(f *fakeStore) *Ops {
	return &Ops{Store: f, Cluster: "test", By: "tester", Poll: time.Millisecond}
}

// actions lists the history's actions, for assertions.
func (f *fakeStore) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.history {
		out = append(out, e.Node+":"+string(e.Action))
	}
	return out
}
