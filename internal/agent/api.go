package agent

import (
	"sync/atomic"
	"time"

	"github.com/pgguard/pgguard/internal/api"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
)

// loopView is what the last loop saw, for the API: the observation and
// when the loop finished.
type loopView struct {
	obs ha.Observation
	at  time.Time
}

// apiSource answers the API's questions from the agent's last loop and,
// for the lease, from the agent's memory at the moment of the request.
type apiSource struct {
	a    *Agent
	last atomic.Pointer[loopView]
}

func (s *apiSource) Node() api.Node {
	v := s.last.Load()
	if v == nil {
		return api.Node{LoopInterval: s.a.cfg.HA.LoopInterval.D(), TTL: s.a.cfg.HA.TTL.D(), LagSeconds: -1}
	}
	return api.NodeFrom(v.obs, v.at, s.a.writableUntil(), s.a.cfg.HA.NoLoadBalance)
}

func (s *apiSource) Cluster() (status.Report, bool) {
	v := s.last.Load()
	if v == nil || v.obs.Cluster.Revision == 0 {
		return status.Report{}, false
	}
	return status.Build(s.a.cfg.Cluster, v.obs.Cluster, s.a.cfg.HA.TTL.D(), time.Now()), true
}

// apiOptions are what the agent's listener serves besides the health
// endpoints.
func (a *Agent) apiOptions() (api.Options, error) {
	return api.Options{Metrics: a.metrics.handler()}, nil
}

// writableUntil is the fencing deadline of the leader lease this node
// holds (zero when it holds none): the watchdog fences at that moment, so
// /primary must stop answering 200 by then.
func (a *Agent) writableUntil() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.mem.HoldsLeader || a.mem.LastRenew.IsZero() {
		return time.Time{}
	}
	return a.mem.LastRenew.Add(a.cfg.HA.TTL.D() - a.cfg.HA.SafetyMargin.D())
}
