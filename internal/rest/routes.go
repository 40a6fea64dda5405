package rest

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/pgguard/pgguard/internal/pgtime"
)

// table is every route with the role it needs. Reads are the viewer's;
// the operator switches over, pauses, runs jobs, backups and drills; the
// rest is the administrator's.
func (s *server) table() []Route {
	v, o, a := auth.Viewer, auth.Operator, auth.Admin
	get := func(p string, h func(*call) (any, error)) Route { return Route{Pattern: "GET " + p, Role: v, h: h} }
	mut := func(m, p string, role auth.Role, h func(*call) (any, error)) Route {
		return Route{Pattern: m + " " + p, Role: role, Mutating: true, h: h}
	}
	// checked is a mutating route whose handler answers ?dry_run=1.
	checked := func(m, p string, role auth.Role, h func(*call) (any, error)) Route {
		r := mut(m, p, role, h)
		r.Check = true
		return r
	}
	return []Route{
		{Pattern: "POST /api/v1/login", h: s.login},
		get("/api/v1/whoami", func(c *call) (any, error) {
			return map[string]string{"name": c.id.Name, "role": string(c.id.Role), "via": c.id.Via}, nil
		}),
		mut("POST", "/api/v1/logout", v, s.logout),

		get("/api/v1/cluster", func(c *call) (any, error) { return c.ops().Status(c.ctx, c.r.URL.Query().Get("store") != "0") }),
		get("/api/v1/history", func(c *call) (any, error) {
			since, err := sinceParam(c)
			if err != nil {
				return nil, err
			}
			return c.ops().History(c.ctx, since)
		}),
		get("/api/v1/explain/{id}", func(c *call) (any, error) { return c.ops().Explain(c.ctx, c.r.PathValue("id")) }),
		get("/api/v1/config", func(c *call) (any, error) { return c.ops().Config(c.ctx) }),
		checked("PATCH", "/api/v1/config", a, s.setConfig),

		checked("POST", "/api/v1/switchover", o, s.switchover),
		mut("DELETE", "/api/v1/switchover", o, func(c *call) (any, error) {
			return c.after(c.ops().CancelSwitchover(c.ctx), "switchover cancelled")
		}),
		checked("POST", "/api/v1/takeover", a, s.takeover),
		mut("POST", "/api/v1/pause", o, func(c *call) (any, error) { return s.pause(c, true) }),
		mut("POST", "/api/v1/resume", o, func(c *call) (any, error) { return s.pause(c, false) }),
		checked("POST", "/api/v1/nodes/{node}/detach", a, func(c *call) (any, error) { return s.detach(c, true) }),
		checked("POST", "/api/v1/nodes/{node}/attach", a, func(c *call) (any, error) { return s.detach(c, false) }),
		checked("POST", "/api/v1/nodes/{node}/stop", a, func(c *call) (any, error) { return s.stopStart(c, c.r.PathValue("node"), true) }),
		checked("POST", "/api/v1/nodes/{node}/start", a, func(c *call) (any, error) { return s.stopStart(c, c.r.PathValue("node"), false) }),
		checked("POST", "/api/v1/stop", a, func(c *call) (any, error) { return s.stopStart(c, "", true) }),
		checked("POST", "/api/v1/start", a, func(c *call) (any, error) { return s.stopStart(c, "", false) }),
		checked("POST", "/api/v1/restart", a, s.rollingRestart),
		checked("POST", "/api/v1/nodes/{node}/reinit", a, s.reinit),
		mut("POST", "/api/v1/nodes/{node}/replay", a, s.replay),
		mut("POST", "/api/v1/nodes/{node}/store-leader", a, func(c *call) (any, error) {
			return c.after(c.ops().MoveStoreLeader(c.ctx, c.r.PathValue("node")), "store leadership moved to "+c.r.PathValue("node"))
		}),
		checked("POST", "/api/v1/members", a, s.addMember),
		checked("DELETE", "/api/v1/members/{node}", a, s.removeMember),
		checked("POST", "/api/v1/restore-cluster", a, s.restoreCluster),
		mut("DELETE", "/api/v1/restore-cluster", a, func(c *call) (any, error) {
			return c.after(c.ops().AbortRestoreCluster(c.ctx), "whole-cluster restore aborted")
		}),

		get("/api/v1/jobs", s.listJobs),
		mut("POST", "/api/v1/jobs", o, s.createJob),
		get("/api/v1/jobs/{id}", func(c *call) (any, error) { return c.jobs().Get(c.ctx, c.r.PathValue("id")) }),
		mut("PUT", "/api/v1/jobs/{id}", o, s.editJob),
		mut("DELETE", "/api/v1/jobs/{id}", o, func(c *call) (any, error) {
			return c.after(c.jobs().Delete(c.ctx, c.r.PathValue("id")), "job "+c.r.PathValue("id")+" deleted")
		}),
		mut("POST", "/api/v1/jobs/{id}/clone", o, s.cloneJob),
		mut("POST", "/api/v1/jobs/{id}/start", o, func(c *call) (any, error) { return c.jobs().Start(c.ctx, c.r.PathValue("id")) }),
		mut("POST", "/api/v1/jobs/{id}/stop", o, func(c *call) (any, error) { return c.jobs().Stop(c.ctx, c.r.PathValue("id")) }),
		get("/api/v1/jobs/{id}/runs", func(c *call) (any, error) { return c.jobs().Runs(c.ctx, c.r.PathValue("id")) }),

		get("/api/v1/backups", s.backups),
		checked("POST", "/api/v1/backups", o, func(c *call) (any, error) { return s.runNow(c, "backup") }),
		get("/api/v1/drills", s.drills),
		checked("POST", "/api/v1/drills", o, func(c *call) (any, error) { return s.runNow(c, "drill") }),

		{Pattern: "GET /api/v1/users", Role: a, h: s.listUsers},
		mut("POST", "/api/v1/users", a, s.addUser),
		mut("DELETE", "/api/v1/users/{name}", a, s.removeUser),
	}
}

func sinceParam(c *call) (time.Time, error) {
	t, err := pgtime.Since("since", c.r.URL.Query().Get("since"), time.Now())
	if err != nil {
		return t, badRequest("%v", err)
	}
	return t, nil
}

// waitParam is ?wait= (how long the call waits for the operation to
// finish), with a default.
func waitParam(c *call, def time.Duration) (time.Duration, error) {
	q := c.r.URL.Query().Get("wait")
	if q == "" {
		return def, nil
	}
	d, err := time.ParseDuration(q)
	if err != nil || d < 0 || d > 30*time.Minute {
		return 0, badRequest("wait=%q: a duration up to 30m (90s, 5m)", q)
	}
	return d, nil
}

// SwitchoverBody is POST /api/v1/switchover's body.
type SwitchoverBody struct {
	To     string    `json:"to,omitempty"`
	At     time.Time `json:"at,omitzero"`
	Settle string    `json:"settle,omitempty"`
}

func (s *server) switchover(c *call) (any, error) {
	var b SwitchoverBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	req := ops.SwitchoverRequest{To: b.To, At: b.At, Settle: 10 * time.Second}
	if b.Settle != "" {
		d, err := time.ParseDuration(b.Settle)
		if err != nil || d < 0 {
			return nil, badRequest("settle %q: a duration (10s)", b.Settle)
		}
		req.Settle = d
	}
	var err error
	if req.Wait, err = waitParam(c, 60*time.Second); err != nil {
		return nil, err
	}
	if c.dryRun {
		req.Settle = 0
		from, to, p, err := c.ops().PlanSwitchover(c.ctx, req)
		if err != nil {
			return nil, err
		}
		return SwitchoverPlan{DryRun: true, From: from, To: to, Plan: p}, nil
	}
	return c.ops().Switchover(c.ctx, req)
}

// SwitchoverPlan is a switchover's dry run.
type SwitchoverPlan struct {
	DryRun bool     `json:"dry_run"`
	From   string   `json:"from"`
	To     string   `json:"to"`
	Plan   ops.Plan `json:"plan"`
}

// TakeoverBody is POST /api/v1/takeover's body.
type TakeoverBody struct {
	To    string `json:"to,omitempty"`
	Force bool   `json:"force,omitempty"`
}

func (s *server) takeover(c *call) (any, error) {
	var b TakeoverBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	if c.dryRun {
		p, err := c.ops().PlanTakeover(c.ctx, b.To)
		return planned{DryRun: true, Plan: p}, err
	}
	wait, err := waitParam(c, 60*time.Second)
	if err != nil {
		return nil, err
	}
	return c.ops().Takeover(c.ctx, b.To, b.Force, wait)
}

// NodeBody names a node (pause, resume: empty for the whole cluster).
type NodeBody struct {
	Node string `json:"node,omitempty"`
}

func (s *server) pause(c *call, pause bool) (any, error) {
	var b NodeBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	return c.ops().Pause(c.ctx, b.Node, pause)
}

func (s *server) detach(c *call, detach bool) (any, error) {
	node := c.r.PathValue("node")
	if c.dryRun {
		p, err := c.ops().PlanDetach(c.ctx, node, detach)
		return planned{DryRun: true, Plan: p}, err
	}
	return c.ops().Detach(c.ctx, node, detach)
}

func (s *server) stopStart(c *call, node string, stop bool) (any, error) {
	if c.dryRun {
		p, err := c.ops().PlanStopStart(c.ctx, node, stop)
		return planned{DryRun: true, Plan: p}, err
	}
	wait, err := waitParam(c, 120*time.Second)
	if err != nil {
		return nil, err
	}
	what := map[bool]string{true: "stopped", false: "started"}[stop]
	return c.after(c.ops().StopStart(c.ctx, node, stop, wait), what)
}

func (s *server) rollingRestart(c *call) (any, error) {
	if c.dryRun {
		p, err := c.ops().PlanRollingRestart(c.ctx)
		return planned{DryRun: true, Plan: p}, err
	}
	return c.after(c.ops().RollingRestart(c.ctx), "rolling restart finished")
}

// ReinitBody is POST /api/v1/nodes/{node}/reinit's body.
type ReinitBody struct {
	FromBackup bool `json:"from_backup,omitempty"`
}

func (s *server) reinit(c *call) (any, error) {
	var b ReinitBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	node := c.r.PathValue("node")
	if c.dryRun {
		p, err := c.ops().PlanReinit(c.ctx, node, b.FromBackup)
		return planned{DryRun: true, Plan: p}, err
	}
	wait, err := waitParam(c, 30*time.Minute)
	if err != nil {
		return nil, err
	}
	return c.after(c.ops().Reinit(c.ctx, node, b.FromBackup, wait), node+" rebuilt")
}

// ReplayBody is POST /api/v1/nodes/{node}/replay's body.
type ReplayBody struct {
	Until  time.Time `json:"until,omitzero"`
	Pause  bool      `json:"pause,omitempty"`
	Cancel bool      `json:"cancel,omitempty"`
}

func (s *server) replay(c *call) (any, error) {
	var b ReplayBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	msg, err := c.ops().Replay(c.ctx, ops.ReplayHold{Node: c.r.PathValue("node"), Until: b.Until, Pause: b.Pause, Cancel: b.Cancel, Now: time.Now()})
	return c.done(msg), err
}

// MemberBody is POST /api/v1/members' body.
type MemberBody struct {
	Node    string `json:"node"`
	PeerURL string `json:"peer_url"`
}

func (s *server) addMember(c *call) (any, error) {
	var b MemberBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	if c.dryRun {
		p, err := c.ops().PlanAdd(c.ctx, b.Node, b.PeerURL)
		return planned{DryRun: true, Plan: p}, err
	}
	return c.ops().Add(c.ctx, b.Node, b.PeerURL)
}

func (s *server) removeMember(c *call) (any, error) {
	node := c.r.PathValue("node")
	if c.dryRun {
		p, err := c.ops().PlanRemove(c.ctx, node)
		return planned{DryRun: true, Plan: p}, err
	}
	msg, err := c.ops().Remove(c.ctx, node)
	return c.done(msg), err
}

// ConfigBody is PATCH /api/v1/config's body; absent fields stay.
type ConfigBody struct {
	Mode        *ha.Mode `json:"mode,omitempty"`
	SyncCount   *int     `json:"sync_count,omitempty"`
	SyncMethod  *string  `json:"sync_method,omitempty"`
	SyncTimeout *string  `json:"sync_timeout,omitempty"`
}

// Change is the operations layer's form of the body.
func (b ConfigBody) Change() (ops.ConfigChange, error) {
	ch := ops.ConfigChange{Mode: b.Mode, SyncCount: b.SyncCount, SyncMethod: b.SyncMethod}
	if b.SyncTimeout != nil {
		d, err := time.ParseDuration(*b.SyncTimeout)
		if err != nil {
			return ch, badRequest("sync_timeout %q: a duration (30s)", *b.SyncTimeout)
		}
		ch.SyncTimeout = &d
	}
	return ch, nil
}

func (s *server) setConfig(c *call) (any, error) {
	var b ConfigBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	ch, err := b.Change()
	if err != nil {
		return nil, err
	}
	if c.dryRun {
		p, err := c.ops().PlanConfig(c.ctx, ch)
		return planned{DryRun: true, Plan: p}, err
	}
	return c.ops().SetConfig(c.ctx, ch)
}

// RestoreClusterBody is POST /api/v1/restore-cluster's body.
type RestoreClusterBody struct {
	Time      string `json:"time,omitempty"`
	LSN       string `json:"lsn,omitempty"`
	XID       string `json:"xid,omitempty"`
	Name      string `json:"name,omitempty"`
	Immediate bool   `json:"immediate,omitempty"`
	Exclusive bool   `json:"exclusive,omitempty"`
	Action    string `json:"action,omitempty"`
	Backup    string `json:"backup,omitempty"`
	Node      string `json:"node,omitempty"`
}

// Request is the operations layer's form of the body.
func (b RestoreClusterBody) Request() ops.RestoreClusterRequest {
	r := ops.RestoreClusterRequest{Exclusive: b.Exclusive, Backup: b.Backup, Node: b.Node}
	r.Target.Time, r.Target.LSN, r.Target.XID, r.Target.Name = b.Time, b.LSN, b.XID, b.Name
	r.Target.Immediate, r.Target.Action = b.Immediate, b.Action
	return r
}

func (s *server) restoreCluster(c *call) (any, error) {
	var b RestoreClusterBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	req := b.Request()
	if c.dryRun {
		p, err := c.ops().PlanRestoreCluster(c.ctx, req)
		return planned{DryRun: true, Plan: p}, err
	}
	var err error
	if req.Wait, err = waitParam(c, 30*time.Minute); err != nil {
		return nil, err
	}
	msg, err := c.ops().RestoreCluster(c.ctx, req)
	return c.done(msg), err
}

// JobList is GET /api/v1/jobs: the jobs, each one's recent runs, and for
// each its schedule in words and its next run (absent: none, or disabled).
type JobList struct {
	Jobs      []jobs.Job            `json:"jobs"`
	Runs      map[string][]jobs.Run `json:"runs"`
	Schedules map[string]string     `json:"schedules,omitempty"`
	Next      map[string]time.Time  `json:"next,omitempty"`
}

func newJobList(js []jobs.Job, runs map[string][]jobs.Run, now time.Time) JobList {
	l := JobList{Jobs: js, Runs: runs, Schedules: map[string]string{}, Next: map[string]time.Time{}}
	for _, j := range js {
		l.Schedules[j.ID] = j.Schedule.String()
		if next, ok := j.Schedule.Next(now); ok && j.Enabled {
			l.Next[j.ID] = next
		}
	}
	return l
}

func (s *server) listJobs(c *call) (any, error) {
	js, runs, err := c.jobs().List(c.ctx)
	return newJobList(js, runs, time.Now()), err
}

func (s *server) createJob(c *call) (any, error) {
	var j jobs.Job
	if err := c.decode(&j); err != nil {
		return nil, err
	}
	return c.jobs().Create(c.ctx, j.ID, func(dst *jobs.Job) error { return fill(dst, j) })
}

func (s *server) editJob(c *call) (any, error) {
	var j jobs.Job
	if err := c.decode(&j); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if j.ID != "" && j.ID != id {
		return nil, badRequest("the body's id %q is not the route's %q: a job's id does not change (clone it)", j.ID, id)
	}
	return c.jobs().Edit(c.ctx, id, func(dst *jobs.Job) error { return fill(dst, j) })
}

// fill copies what a client may set of a job onto dst (the id, the
// creation time and the revision stay the store's).
func fill(dst *jobs.Job, src jobs.Job) error {
	if src.Name != "" {
		dst.Name = src.Name
	}
	dst.Kind, dst.Schedule, dst.Node, dst.Enabled, dst.Options = src.Kind, src.Schedule, src.Node, src.Enabled, src.Options
	dst.Precondition, dst.PreScript, dst.PostScript = src.Precondition, src.PreScript, src.PostScript
	return nil
}

// CloneBody is POST /api/v1/jobs/{id}/clone's body.
type CloneBody struct {
	ID string `json:"id"`
}

func (s *server) cloneJob(c *call) (any, error) {
	var b CloneBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	return c.jobs().Clone(c.ctx, c.r.PathValue("id"), b.ID)
}

func (s *server) backups(c *call) (any, error) {
	if s.cfg.Backups == nil {
		return nil, &httpError{code: http.StatusNotFound, msg: "this agent's node has no backup repository (repository.url): ask an agent that has one"}
	}
	return s.cfg.Backups(c.ctx)
}

// drills are the runs of every drill job, newest first.
func (s *server) drills(c *call) (any, error) {
	js, runs, err := c.jobs().List(c.ctx)
	if err != nil {
		return nil, err
	}
	var drills []jobs.Job
	drillRuns := map[string][]jobs.Run{}
	for _, j := range js {
		if j.Kind == jobs.KindDrill {
			drills = append(drills, j)
			drillRuns[j.ID] = runs[j.ID]
		}
	}
	return newJobList(drills, drillRuns, time.Now()), nil
}

// RunNowBody is POST /api/v1/backups' and /api/v1/drills' body: the job
// to run now, or for a backup the kind (full, incr) of the job to run.
type RunNowBody struct {
	Job  string `json:"job,omitempty"`
	Kind string `json:"kind,omitempty"`
}

// runNow starts the named job, or the one job of the kind asked: a
// backup or a drill runs where its job says (the primary by default),
// with its options, as a run of that job.
func (s *server) runNow(c *call, what string) (any, error) {
	var b RunNowBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	js, _, err := c.jobs().List(c.ctx)
	if err != nil {
		return nil, err
	}
	want := map[jobs.Kind]bool{}
	if what == "drill" {
		want[jobs.KindDrill] = true
	} else if b.Kind != "" {
		want[jobs.Kind(b.Kind)] = true
	} else {
		want[jobs.KindFull], want[jobs.KindIncr] = true, true
	}
	// The named job, else the jobs of the kind; of several, the enabled
	// ones first, then by id: any of them backs up (or drills) the same
	// way, and the answer names the job that ran.
	var found []jobs.Job
	for _, j := range js {
		if want[j.Kind] && (b.Job == "" || j.ID == b.Job) {
			found = append(found, j)
		}
	}
	if len(found) == 0 && b.Job != "" {
		return nil, badRequest("no %s job %q (GET /api/v1/jobs lists them)", what, b.Job)
	}
	if len(found) == 0 {
		return nil, badRequest("no %s job%s: define one (pgguard jobs create, POST /api/v1/jobs) and run it from here", what, kindNote(b.Kind))
	}
	sort.SliceStable(found, func(i, k int) bool {
		if found[i].Enabled != found[k].Enabled {
			return found[i].Enabled
		}
		return found[i].ID < found[k].ID
	})
	if c.dryRun {
		return planned{DryRun: true, Plan: ops.Plan{Op: "run job " + found[0].ID + " now", OK: true}}, nil
	}
	return c.jobs().Start(c.ctx, found[0].ID)
}

func kindNote(kind string) string {
	if kind == "" {
		return ""
	}
	return " of kind " + strconv.Quote(kind)
}

// AddUserBody is POST /api/v1/users' body. A new token is made for the
// user (returned once); an existing user with replace gets a new token
// and role.
type AddUserBody struct {
	Name     string    `json:"name"`
	Role     auth.Role `json:"role"`
	Password string    `json:"password,omitempty"`
	Replace  bool      `json:"replace,omitempty"`
}

// NewUser is the answer to POST /api/v1/users: the token, shown once.
type NewUser struct {
	User  auth.Public `json:"user"`
	Token string      `json:"token"`
}

func (s *server) listUsers(c *call) (any, error) {
	us, err := c.s.cfg.Store.Users(c.ctx)
	out := make([]auth.Public, 0, len(us))
	for _, u := range us {
		out = append(out, u.Public())
	}
	return out, err
}

func (s *server) addUser(c *call) (any, error) {
	var b AddUserBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	nu, err := AddUser(c.ctx, s.cfg.Store, b, c.id.By())
	s.forgetUsers()
	return nu, err
}

func (s *server) removeUser(c *call) (any, error) {
	name := c.r.PathValue("name")
	err := RemoveUser(c.ctx, s.cfg.Store, name, c.id.By())
	s.forgetUsers()
	return c.done(fmt.Sprintf("user %s removed", name)), err
}
