package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pgguard/pgguard/internal/api"
	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/console"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/repoops"
	"github.com/pgguard/pgguard/internal/rest"
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
func (a *Agent) apiOptions(store rest.Store) (api.Options, error) {
	opts := api.Options{Metrics: a.metrics.handler()}
	c := a.cfg.API
	if c.TLS.Enabled() {
		t, err := certs.ServerConfig(c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return opts, fmt.Errorf("api.tls: %w", err)
		}
		opts.TLS = t
	}
	if opts.TLS != nil || c.AllowPlaintext {
		rc := rest.Config{Store: store, Cluster: a.cfg.Cluster, Node: a.cfg.Name, Log: a.log}
		if a.cfg.Repository.URL != "" && a.configPath != "" {
			rc.Backups = a.listBackups
		}
		opts.API = rest.New(rc)
		opts.Console = console.Handler()
	} else {
		a.log.Info("operator API not served: api.tls is not set (api.allow_plaintext: true serves it over plain HTTP)")
	}
	return opts, nil
}

// listBackups is GET /api/v1/backups: this node's repository's backups.
func (a *Agent) listBackups(ctx context.Context) (any, error) {
	s, err := a.repository()
	if err != nil {
		return nil, err
	}
	return repoops.List(ctx, s)
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
