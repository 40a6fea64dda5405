package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pgguard/pgguard/internal/ha"
)

// callback is one event for the callbacks runner.
type callback struct {
	event      string
	role, prev ha.Role
}

// callbacks runs the node's callback executables one at a time, in the
// order the events happened, away from the HA loop: a slow callback never
// holds up a failover. A burst beyond the queue is recorded as skipped.
type callbacks struct {
	a     *Agent
	queue chan callback
	// role is the role the last events were computed for, running the
	// last role PostgreSQL ran in before it.
	role, running ha.Role
}

func newCallbacks(a *Agent) *callbacks {
	return &callbacks{a: a, queue: make(chan callback, 64)}
}

// observe turns a change of the node's role into its events.
func (c *callbacks) observe(role ha.Role) {
	if role == c.role {
		return
	}
	prev := c.role
	for _, e := range ha.CallbackEvents(c.running, prev, role) {
		from := prev
		if e == "on_promote" || e == "on_demote" || e == "on_role_change" {
			from = ha.RolePrimary
			if role == ha.RolePrimary {
				from = ha.RoleStandby
			}
		}
		c.enqueue(callback{event: e, role: role, prev: from})
	}
	if prev != "" && prev != ha.RoleNone {
		c.running = prev
	}
	c.role = role
}

func (c *callbacks) enqueue(cb callback) {
	if c.a.cfg.Callbacks.Path(cb.event) == "" {
		return
	}
	select {
	case c.queue <- cb:
	default:
		c.a.log.Warn("callback skipped: too many pending", "event", cb.event)
		go c.a.record(context.Background(), ha.EventCallback, cb.event, "skipped: more than 64 callbacks pending", "skipped")
	}
}

// run executes queued callbacks until ctx ends.
func (c *callbacks) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case cb := <-c.queue:
			c.exec(ctx, cb)
		}
	}
}

// exec runs one callback: arguments EVENT ROLE CLUSTER (Patroni's), the
// PGGUARD_* variables and nothing inherited, under callbacks.timeout; the
// exit status goes to the history, the output to this node's log.
func (c *callbacks) exec(ctx context.Context, cb callback) {
	a := c.a
	path := a.cfg.Callbacks.Path(cb.event)
	if path == "" {
		return
	}
	env := []string{"PGGUARD_EVENT=" + cb.event, "PGGUARD_ROLE=" + string(cb.role), "PGGUARD_PREVIOUS_ROLE=" + string(cb.prev),
		"PGGUARD_NODE=" + a.cfg.Name, "PGGUARD_CLUSTER=" + a.cfg.Cluster}
	took, err := runLocal(ctx, path, []string{cb.event, string(cb.role), a.cfg.Cluster}, env, a.cfg.Callbacks.Timeout.D(), "callbacks.timeout",
		func(line string) { a.log.Info("callback output", "event", cb.event, "line", line) })
	reason := fmt.Sprintf("%s %s %s %s", filepath.Base(path), cb.event, cb.role, a.cfg.Cluster)
	result := fmt.Sprintf("ok in %s", took)
	if err != nil {
		result = "failed: " + strings.TrimSpace(err.Error())
		a.log.Warn("callback failed", "event", cb.event, "path", path, "err", err)
	}
	a.record(context.WithoutCancel(ctx), ha.EventCallback, cb.event, reason, result)
}

// callbackRole is the role callbacks follow: PostgreSQL running as a
// primary or a standby, or stopped (health blips do not count).
func callbackRole(l ha.Local) ha.Role {
	switch {
	case !l.Running:
		return ha.RoleNone
	case l.InRecovery:
		return ha.RoleStandby
	}
	return ha.RolePrimary
}
