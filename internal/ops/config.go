package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// ConfigChange is a change of the cluster's run-time configuration; nil
// fields stay as they are.
type ConfigChange struct {
	Mode        *ha.Mode
	SyncCount   *int
	SyncMethod  *string
	SyncTimeout *time.Duration
}

// Empty reports whether the change changes nothing.
func (ch ConfigChange) Empty() bool {
	return ch.Mode == nil && ch.SyncCount == nil && ch.SyncMethod == nil && ch.SyncTimeout == nil
}

func (ch ConfigChange) apply(c *ha.ClusterConfig) {
	if ch.Mode != nil {
		c.Mode = *ch.Mode
	}
	if ch.SyncCount != nil {
		c.SyncCount = *ch.SyncCount
	}
	if ch.SyncMethod != nil {
		c.SyncMethod = *ch.SyncMethod
	}
	if ch.SyncTimeout != nil {
		c.SyncTimeoutMs = ch.SyncTimeout.Milliseconds()
	}
}

// PlanConfig checks a configuration change.
func (o *Ops) PlanConfig(ctx context.Context, ch ConfigChange) (Plan, error) {
	c, err := o.load(ctx)
	if err != nil {
		return Plan{}, err
	}
	next := c.Config
	ch.apply(&next)
	return newPlan("configuration change", ha.ConfigChecks(c, next)), nil
}

// Config shows the run-time configuration.
func (o *Ops) Config(ctx context.Context) (ha.ClusterConfig, error) {
	c, err := o.load(ctx)
	return c.Config, err
}

// SetConfig checks and applies a configuration change; an invalid one
// is bad input.
func (o *Ops) SetConfig(ctx context.Context, ch ConfigChange) (ha.ClusterConfig, error) {
	c, err := o.load(ctx)
	if err != nil {
		return ha.ClusterConfig{}, err
	}
	next := c.Config
	ch.apply(&next)
	if err := next.Validate(); err != nil {
		return ha.ClusterConfig{}, badinput.Wrap(err)
	}
	p := newPlan("configuration change", ha.ConfigChecks(c, next))
	if err := p.Refusal(); err != nil {
		return ha.ClusterConfig{}, err
	}
	return o.edit(ctx, func(c *ha.ClusterConfig) error { ch.apply(c); return nil })
}

// Pause pauses (or resumes) automatic failover for the whole cluster, or
// with node every step of that node's agent.
func (o *Ops) Pause(ctx context.Context, node string, pause bool) (ha.ClusterConfig, error) {
	if node == "" {
		return o.edit(ctx, func(c *ha.ClusterConfig) error { c.Paused = pause; return nil })
	}
	if err := o.KnownNode(ctx, node); err != nil {
		return ha.ClusterConfig{}, err
	}
	return o.edit(ctx, func(c *ha.ClusterConfig) error { c.PausedNodes = ha.WithMember(c.PausedNodes, node, pause); return nil })
}

// PlanDetach checks detaching (or attaching) a standby.
func (o *Ops) PlanDetach(ctx context.Context, node string, detach bool) (Plan, error) {
	c, err := o.load(ctx)
	if err != nil {
		return Plan{}, err
	}
	title := map[bool]string{true: "detach", false: "attach"}[detach] + " of " + node
	return newPlan(title, ha.DetachChecks(c, node, detach)), nil
}

// Detach detaches (or attaches) a standby: never synchronous, never
// promoted while detached.
func (o *Ops) Detach(ctx context.Context, node string, detach bool) (ha.ClusterConfig, error) {
	p, err := o.PlanDetach(ctx, node, detach)
	if err != nil {
		return ha.ClusterConfig{}, err
	}
	if err := p.Refusal(); err != nil {
		return ha.ClusterConfig{}, err
	}
	return o.edit(ctx, func(c *ha.ClusterConfig) error { c.Detached = ha.WithMember(c.Detached, node, detach); return nil })
}

// edit changes the configuration with a compare-and-swap in the store and
// records the difference in the history: against the version the swap
// replaced, which the store hands to fn (again on each retry).
func (o *Ops) edit(ctx context.Context, fn func(*ha.ClusterConfig) error) (ha.ClusterConfig, error) {
	var before ha.ClusterConfig
	cctx, cancel := o.call(ctx)
	defer cancel()
	cc, err := o.Store.UpdateConfig(cctx, func(c *ha.ClusterConfig) error {
		before = *c
		return fn(c)
	})
	if err != nil {
		var invalid *ha.InvalidConfigError
		if errors.As(err, &invalid) {
			return cc, badinput.Wrap(err)
		}
		return cc, err
	}
	return cc, o.record(ctx, dcs.Event{Action: ha.EventConfig, Reason: DescribeConfigChange(before, cc)})
}

// DescribeConfigChange says what changed between two configurations.
func DescribeConfigChange(a, b ha.ClusterConfig) string {
	var parts []string
	if a.Mode != b.Mode {
		parts = append(parts, fmt.Sprintf("mode %s → %s", a.Mode, b.Mode))
	}
	if a.SyncCount != b.SyncCount {
		parts = append(parts, fmt.Sprintf("sync_count %d → %d", a.SyncCount, b.SyncCount))
	}
	if a.SyncMethod != b.SyncMethod {
		parts = append(parts, fmt.Sprintf("sync_method %s → %s", a.SyncMethod, b.SyncMethod))
	}
	if a.SyncTimeoutMs != b.SyncTimeoutMs {
		parts = append(parts, fmt.Sprintf("sync_timeout %s → %s", a.SyncTimeout(), b.SyncTimeout()))
	}
	if strings.Join(a.Detached, ",") != strings.Join(b.Detached, ",") {
		parts = append(parts, fmt.Sprintf("detached %v → %v", a.Detached, b.Detached))
	}
	if strings.Join(a.PausedNodes, ",") != strings.Join(b.PausedNodes, ",") {
		parts = append(parts, fmt.Sprintf("paused nodes %v → %v", a.PausedNodes, b.PausedNodes))
	}
	if a.Paused != b.Paused {
		parts = append(parts, fmt.Sprintf("paused %v → %v", a.Paused, b.Paused))
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}
