package ha

// CallbackEvents lists the callbacks (Patroni's names), in order, that a
// change of this node's role from prev to cur calls; lastRunning is the
// role PostgreSQL last ran in before prev (empty when it never ran). A
// start calls on_start, a stop on_stop, a change between primary and
// standby on_promote or on_demote and then on_role_change, also when a
// stop came between (a switchover stops the old primary and starts it as
// a standby). A fence is reported by the step that fences, not here.
func CallbackEvents(lastRunning, prev, cur Role) []string {
	if prev == "" {
		prev = RoleNone
	}
	if prev == cur {
		return nil
	}
	if cur == RoleNone {
		return []string{"on_stop"}
	}
	var out []string
	from := prev
	if prev == RoleNone {
		out = append(out, "on_start")
		from = lastRunning
	}
	switch {
	case from == RoleStandby && cur == RolePrimary:
		out = append(out, "on_promote", "on_role_change")
	case from == RolePrimary && cur == RoleStandby:
		out = append(out, "on_demote", "on_role_change")
	}
	return out
}
