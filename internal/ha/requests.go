package ha

// decideOperatorRequests handles a planned stop and a rebuild request.
func decideOperatorRequests(o Observation) (Plan, bool) {
	c, l := o.Cluster, o.Local
	leads := c.Leader != nil && c.Leader.Name == o.Self
	if c.Reinit[o.Self] {
		if leads {
			return Plan{{Kind: ClearReinit, Reason: "the primary cannot be rebuilt from itself: switch over first"}}, true
		}
		if c.Leader == nil {
			return Plan{{Kind: Wait, Reason: "reinit requested; waiting for a leader to clone from"}}, true
		}
		plan := Plan{}
		if l.Running {
			plan = append(plan, Action{Kind: Stop, Reason: "reinit requested by the operator"})
		}
		rebuild := Action{Kind: Reinit, Target: c.Leader.Name, Reason: "reinit requested by the operator"}
		if _, ok := c.ReinitFromBackup[o.Self]; ok {
			if o.Settings.HasRepository {
				rebuild = Action{Kind: RestoreStandby, Target: c.Leader.Name, Reason: "reinit from the newest backup requested by the operator"}
			} else {
				rebuild.Reason = "reinit from a backup requested, but this node has no backup repository (repository.url): cloning " + c.Leader.Name + " instead"
			}
		}
		return append(plan,
			rebuild,
			Action{Kind: ClearReinit, Reason: "rebuilt"},
			Action{Kind: StartStandby, Target: c.Leader.Name}), true
	}
	if !c.Config.IsStopped(o.Self) {
		return nil, false
	}
	plan := Plan{}
	if leads && l.Running && !l.InRecovery {
		plan = append(plan, Action{Kind: RenewLeader})
	}
	if l.Running {
		return append(plan, Action{Kind: Stop, Reason: "planned stop requested by the operator"}), true
	}
	if leads {
		// A planned stop of the primary promotes nobody: keep the key.
		if !o.Memory.HoldsLeader {
			plan = append(plan, Action{Kind: AcquireLeader, Reason: "keep the leader key through a planned stop"})
		}
		plan = append(plan, Action{Kind: RenewLeader})
	}
	return append(plan, Action{Kind: Wait, Reason: "stopped by the operator ('pgguard ctl start " + o.Self + "')"}), true
}
