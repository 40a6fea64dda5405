package jobs

import (
	"fmt"
	"time"

	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/storage"
)

// Change is an edit of a job as an operator gives it (the CLI's flags, an
// API request): values, and Set, the names of the fields given, by their
// flag names ("kind", "schedule", "channels", "pre-arg", ...). Apply
// copies only those.
type Change struct {
	Name, Kind, Schedule, Node    string
	Pre, Post, Precondition       string
	PreArgs, PostArgs, PreconArgs []string
	Disabled                      bool
	Options                       Options
	Set                           map[string]bool
}

// Apply copies the fields set onto j, checks them and j, and stamps
// j.Updated.
func (c Change) Apply(j *Job, now time.Time) error {
	set := func(name string) bool { return c.Set[name] }
	if set("name") {
		j.Name = c.Name
	}
	if set("kind") {
		j.Kind = Kind(c.Kind)
	}
	if set("schedule") {
		s, err := schedule.Parse(c.Schedule, now)
		if err != nil {
			return fmt.Errorf("--schedule: %w", err)
		}
		j.Schedule = s
	}
	if set("node") {
		j.Node = c.Node
	}
	setScript(&j.PreScript, c.Pre, c.PreArgs, set("pre"), set("pre-arg"))
	setScript(&j.PostScript, c.Post, c.PostArgs, set("post"), set("post-arg"))
	setScript(&j.Precondition, c.Precondition, c.PreconArgs, set("precondition"), set("precondition-arg"))
	for _, rate := range []struct {
		name string
		v    string
		dst  *string
	}{{"rate-limit", c.Options.RateLimit, &j.Options.RateLimit}, {"read-limit", c.Options.ReadLimit, &j.Options.ReadLimit},
		{"write-limit", c.Options.WriteLimit, &j.Options.WriteLimit}} {
		if !set(rate.name) {
			continue
		}
		if _, err := storage.ParseRateSchedule(rate.v); err != nil {
			return fmt.Errorf("--%s: %w", rate.name, err)
		}
		*rate.dst = rate.v
	}
	o, n := c.Options, &j.Options
	for name, copyField := range map[string]func(){
		"channels": func() { n.Channels = o.Channels }, "keep": func() { n.Keep = o.Keep },
		"keep-days": func() { n.KeepDays = o.KeepDays }, "wal": func() { n.WAL = o.WAL },
		"db": func() { n.DB = o.DB }, "schema": func() { n.Schema = o.Schema }, "table": func() { n.Table = o.Table },
		"to-repo": func() { n.ToRepo = o.ToRepo }, "newest": func() { n.Newest = o.Newest }, "check": func() { n.Checks = o.Checks },
		"target-dir": func() { n.TargetDir = o.TargetDir }, "backup": func() { n.Backup = o.Backup },
		"target-time": func() { n.TargetTime = o.TargetTime }, "target-lsn": func() { n.TargetLSN = o.TargetLSN },
		"target-xid": func() { n.TargetXID = o.TargetXID }, "target-name": func() { n.TargetName = o.TargetName },
		"target-immediate": func() { n.TargetImmediate = o.TargetImmediate }, "standby": func() { n.Standby = o.Standby },
		"into": func() { n.Into = o.Into }, "from": func() { n.From = o.From }, "to": func() { n.To = o.To },
	} {
		if set(name) {
			copyField()
		}
	}
	if set("disabled") {
		j.Enabled = !c.Disabled
	}
	j.Updated = now
	return j.Validate()
}

// setScript applies a script field and its arguments: an empty name
// removes the script; arguments alone replace those of the script set.
func setScript(s **Script, name string, args []string, nameSet, argsSet bool) {
	switch {
	case nameSet && name == "":
		*s = nil
	case nameSet:
		*s = &Script{Name: name, Args: args}
	case argsSet && *s != nil:
		(*s).Args = args
	}
}
