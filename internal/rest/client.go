package rest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/explain"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/pgguard/pgguard/internal/status"
)

// Client runs operations through the API of any agent of a cluster: it
// asks the URLs in turn until one answers. It is an ops.Operator and an
// ops.JobOperator, so `pgguard ctl` and `pgguard jobs` work the same
// through it as against the store.
type Client struct {
	// Cluster is the cluster's name, as the client's configuration says.
	Cluster string
	URLs    []string
	// Token is the bearer token ("" with a client certificate in TLS).
	Token string
	TLS   *tls.Config
	// Progress receives the operation's progress lines when it returns.
	Progress io.Writer
	http     *http.Client
}

var (
	_ ops.Operator    = (*Client)(nil)
	_ ops.JobOperator = (*Client)(nil)
)

// NewClient checks the URLs and makes a client.
func NewClient(urls []string, token string, tlsCfg *tls.Config) (*Client, error) {
	if len(urls) == 0 {
		return nil, badinput.Errorf("api: no URL: list the agents' API URLs (https://HOST:PORT)")
	}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, badinput.Errorf("api: %q: an http:// or https:// URL of an agent's API listener", u)
		}
		if p.User != nil {
			return nil, badinput.Errorf("api: %q: no credentials in the URL (they would show in logs): use token_file", p.Redacted())
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsCfg != nil {
		// The transport adds its protocols to the config: a copy keeps
		// the caller's config as it was.
		tr.TLSClientConfig = tlsCfg.Clone()
	}
	return &Client{URLs: urls, Token: token, TLS: tlsCfg, http: &http.Client{Transport: tr}}, nil
}

// APIError is an error answer of the API.
type APIError struct {
	Code int
	Body errorBody
}

func (e *APIError) Error() string { return e.Body.Error }

// do sends one call to the first agent that answers and decodes the
// answer into out. A refusal comes back as *ops.RefusedError, bad input
// as a badinput error, as from the operations layer itself.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	if q != nil && len(q) > 0 {
		path += "?" + q.Encode()
	}
	var lastErr error
	for _, base := range c.URLs {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection refused") {
				lastErr = fmt.Errorf("%s: %w", base, err)
				continue // another agent may answer
			}
			return fmt.Errorf("%s: %w", base, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", base, err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable && len(c.URLs) > 1 {
			lastErr = fmt.Errorf("%s: %s", base, strings.TrimSpace(string(data)))
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return decodeError(resp.StatusCode, data)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
		return nil
	}
	return fmt.Errorf("no agent's API answers: %w", lastErr)
}

func decodeError(code int, data []byte) error {
	e := &APIError{Code: code}
	if json.Unmarshal(data, &e.Body) != nil || e.Body.Error == "" {
		e.Body.Error = fmt.Sprintf("HTTP %d: %s", code, strings.TrimSpace(string(data)))
	}
	switch {
	case code == http.StatusConflict && e.Body.Plan != nil:
		return &ops.RefusedError{Plan: *e.Body.Plan, Hint: e.Body.Hint}
	case code == http.StatusBadRequest:
		return badinput.Errorf("%s", e.Body.Error)
	case code == http.StatusUnauthorized:
		e.Body.Error = "the API refused the credentials (401): " + e.Body.Error
	case code == http.StatusForbidden:
		e.Body.Error = "the API refused the call (403): " + e.Body.Error
	}
	return e
}

// mutate runs a mutating call, prints its progress lines, and decodes.
func (c *Client) mutate(ctx context.Context, method, path string, q url.Values, body, out any) error {
	var d struct {
		Progress []string `json:"progress"`
	}
	var raw json.RawMessage
	if err := c.do(ctx, method, path, q, body, &raw); err != nil {
		return err
	}
	if json.Unmarshal(raw, &d) == nil && c.Progress != nil {
		for _, l := range d.Progress {
			fmt.Fprintln(c.Progress, l)
		}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func dry() url.Values { return url.Values{"dry_run": {"1"}} }

func waitQ(d time.Duration) url.Values {
	if d <= 0 {
		return nil
	}
	return url.Values{"wait": {d.String()}}
}

// plan runs a dry run whose answer is {"plan": P}.
func (c *Client) plan(ctx context.Context, method, path string, body, p any) error {
	var out struct {
		Plan json.RawMessage `json:"plan"`
	}
	if err := c.do(ctx, method, path, dry(), body, &out); err != nil {
		return err
	}
	return json.Unmarshal(out.Plan, p)
}

func node(path, n string) string { return strings.Replace(path, "{node}", url.PathEscape(n), 1) }

// Name is the cluster's name.
func (c *Client) Name() string { return c.Cluster }

// Status is GET /api/v1/cluster.
func (c *Client) Status(ctx context.Context, withStore bool) (r status.Report, err error) {
	q := url.Values{}
	if !withStore {
		q.Set("store", "0")
	}
	return r, c.do(ctx, "GET", "/api/v1/cluster", q, nil, &r)
}

// History is GET /api/v1/history.
func (c *Client) History(ctx context.Context, since time.Time) (ev []dcs.Event, err error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	return ev, c.do(ctx, "GET", "/api/v1/history", q, nil, &ev)
}

// Explain is GET /api/v1/explain/{id}.
func (c *Client) Explain(ctx context.Context, id string) (ep explain.Episode, err error) {
	return ep, c.do(ctx, "GET", "/api/v1/explain/"+url.PathEscape(id), nil, nil, &ep)
}

func switchoverBody(req ops.SwitchoverRequest) SwitchoverBody {
	b := SwitchoverBody{To: req.To, At: req.At}
	if req.Settle > 0 {
		b.Settle = req.Settle.String()
	}
	return b
}

// PlanSwitchover is POST /api/v1/switchover?dry_run=1.
func (c *Client) PlanSwitchover(ctx context.Context, req ops.SwitchoverRequest) (string, string, ops.Plan, error) {
	var p SwitchoverPlan
	err := c.do(ctx, "POST", "/api/v1/switchover", dry(), switchoverBody(req), &p)
	return p.From, p.To, p.Plan, err
}

// Switchover is POST /api/v1/switchover.
func (c *Client) Switchover(ctx context.Context, req ops.SwitchoverRequest) (r ops.SwitchoverResult, err error) {
	return r, c.mutate(ctx, "POST", "/api/v1/switchover", waitQ(req.Wait), switchoverBody(req), &r)
}

// CancelSwitchover is DELETE /api/v1/switchover.
func (c *Client) CancelSwitchover(ctx context.Context) error {
	return c.mutate(ctx, "DELETE", "/api/v1/switchover", nil, nil, nil)
}

// PlanTakeover is POST /api/v1/takeover?dry_run=1.
func (c *Client) PlanTakeover(ctx context.Context, to string) (p ops.TakeoverPlan, err error) {
	return p, c.plan(ctx, "POST", "/api/v1/takeover", TakeoverBody{To: to}, &p)
}

// Takeover is POST /api/v1/takeover.
func (c *Client) Takeover(ctx context.Context, to string, force bool, wait time.Duration) (p ops.TakeoverPlan, err error) {
	return p, c.mutate(ctx, "POST", "/api/v1/takeover", waitQ(wait), TakeoverBody{To: to, Force: force}, &p)
}

func configBody(ch ops.ConfigChange) ConfigBody {
	b := ConfigBody{Mode: ch.Mode, SyncCount: ch.SyncCount, SyncMethod: ch.SyncMethod}
	if ch.SyncTimeout != nil {
		s := ch.SyncTimeout.String()
		b.SyncTimeout = &s
	}
	return b
}

// PlanConfig is PATCH /api/v1/config?dry_run=1.
func (c *Client) PlanConfig(ctx context.Context, ch ops.ConfigChange) (p ops.Plan, err error) {
	return p, c.plan(ctx, "PATCH", "/api/v1/config", configBody(ch), &p)
}

// Config is GET /api/v1/config.
func (c *Client) Config(ctx context.Context) (cfg ha.ClusterConfig, err error) {
	return cfg, c.do(ctx, "GET", "/api/v1/config", nil, nil, &cfg)
}

// SetConfig is PATCH /api/v1/config.
func (c *Client) SetConfig(ctx context.Context, ch ops.ConfigChange) (cfg ha.ClusterConfig, err error) {
	return cfg, c.mutate(ctx, "PATCH", "/api/v1/config", nil, configBody(ch), &cfg)
}

// Pause is POST /api/v1/pause (or /resume).
func (c *Client) Pause(ctx context.Context, n string, pause bool) (cfg ha.ClusterConfig, err error) {
	path := map[bool]string{true: "/api/v1/pause", false: "/api/v1/resume"}[pause]
	return cfg, c.mutate(ctx, "POST", path, nil, NodeBody{Node: n}, &cfg)
}

func detachPath(n string, detach bool) string {
	return node(map[bool]string{true: "/api/v1/nodes/{node}/detach", false: "/api/v1/nodes/{node}/attach"}[detach], n)
}

// PlanDetach is POST /api/v1/nodes/{node}/detach?dry_run=1 (or attach).
func (c *Client) PlanDetach(ctx context.Context, n string, detach bool) (p ops.Plan, err error) {
	return p, c.plan(ctx, "POST", detachPath(n, detach), nil, &p)
}

// Detach is POST /api/v1/nodes/{node}/detach (or attach).
func (c *Client) Detach(ctx context.Context, n string, detach bool) (cfg ha.ClusterConfig, err error) {
	return cfg, c.mutate(ctx, "POST", detachPath(n, detach), nil, nil, &cfg)
}

// PlanReinit is POST /api/v1/nodes/{node}/reinit?dry_run=1.
func (c *Client) PlanReinit(ctx context.Context, n string, fromBackup bool) (p ops.ReinitPlan, err error) {
	return p, c.plan(ctx, "POST", node("/api/v1/nodes/{node}/reinit", n), ReinitBody{FromBackup: fromBackup}, &p)
}

// Reinit is POST /api/v1/nodes/{node}/reinit.
func (c *Client) Reinit(ctx context.Context, n string, fromBackup bool, wait time.Duration) error {
	return c.mutate(ctx, "POST", node("/api/v1/nodes/{node}/reinit", n), waitQ(wait), ReinitBody{FromBackup: fromBackup}, nil)
}

func stopStartPath(n string, stop bool) string {
	verb := map[bool]string{true: "stop", false: "start"}[stop]
	if n == "" {
		return "/api/v1/" + verb
	}
	return node("/api/v1/nodes/{node}/", n) + verb
}

// PlanStopStart is POST /api/v1/nodes/{node}/stop?dry_run=1 (start; or
// the whole cluster's).
func (c *Client) PlanStopStart(ctx context.Context, n string, stop bool) (p ops.StopStartPlan, err error) {
	return p, c.plan(ctx, "POST", stopStartPath(n, stop), nil, &p)
}

// StopStart is POST /api/v1/nodes/{node}/stop (start; or the cluster's).
func (c *Client) StopStart(ctx context.Context, n string, stop bool, wait time.Duration) error {
	return c.mutate(ctx, "POST", stopStartPath(n, stop), waitQ(wait), nil, nil)
}

// PlanRollingRestart is POST /api/v1/restart?dry_run=1.
func (c *Client) PlanRollingRestart(ctx context.Context) (p ops.Plan, err error) {
	return p, c.plan(ctx, "POST", "/api/v1/restart", nil, &p)
}

// RollingRestart is POST /api/v1/restart.
func (c *Client) RollingRestart(ctx context.Context) error {
	return c.mutate(ctx, "POST", "/api/v1/restart", nil, nil, nil)
}

// Replay is POST /api/v1/nodes/{node}/replay.
func (c *Client) Replay(ctx context.Context, h ops.ReplayHold) (string, error) {
	var d done
	err := c.mutate(ctx, "POST", node("/api/v1/nodes/{node}/replay", h.Node), nil, ReplayBody{Until: h.Until, Pause: h.Pause, Cancel: h.Cancel}, &d)
	return d.Message, err
}

// PlanRemove is DELETE /api/v1/members/{node}?dry_run=1.
func (c *Client) PlanRemove(ctx context.Context, n string) (p ops.Plan, err error) {
	return p, c.plan(ctx, "DELETE", node("/api/v1/members/{node}", n), nil, &p)
}

// Remove is DELETE /api/v1/members/{node}.
func (c *Client) Remove(ctx context.Context, n string) (string, error) {
	var d done
	err := c.mutate(ctx, "DELETE", node("/api/v1/members/{node}", n), nil, nil, &d)
	return d.Message, err
}

// PlanAdd is POST /api/v1/members?dry_run=1.
func (c *Client) PlanAdd(ctx context.Context, n, peerURL string) (p ops.Plan, err error) {
	return p, c.plan(ctx, "POST", "/api/v1/members", MemberBody{Node: n, PeerURL: peerURL}, &p)
}

// Add is POST /api/v1/members.
func (c *Client) Add(ctx context.Context, n, peerURL string) (r dcs.AddResult, err error) {
	return r, c.mutate(ctx, "POST", "/api/v1/members", nil, MemberBody{Node: n, PeerURL: peerURL}, &r)
}

// MoveStoreLeader is POST /api/v1/nodes/{node}/store-leader.
func (c *Client) MoveStoreLeader(ctx context.Context, n string) error {
	return c.mutate(ctx, "POST", node("/api/v1/nodes/{node}/store-leader", n), nil, nil, nil)
}

func restoreBody(req ops.RestoreClusterRequest) RestoreClusterBody {
	t := req.Target
	return RestoreClusterBody{Time: t.Time, LSN: t.LSN, XID: t.XID, Name: t.Name, Immediate: t.Immediate,
		Exclusive: req.Exclusive, Action: t.Action, Backup: req.Backup, Node: req.Node}
}

// PlanRestoreCluster is POST /api/v1/restore-cluster?dry_run=1.
func (c *Client) PlanRestoreCluster(ctx context.Context, req ops.RestoreClusterRequest) (p ops.RestoreClusterPlan, err error) {
	return p, c.plan(ctx, "POST", "/api/v1/restore-cluster", restoreBody(req), &p)
}

// RestoreCluster is POST /api/v1/restore-cluster.
func (c *Client) RestoreCluster(ctx context.Context, req ops.RestoreClusterRequest) (string, error) {
	var d done
	err := c.mutate(ctx, "POST", "/api/v1/restore-cluster", waitQ(req.Wait), restoreBody(req), &d)
	return d.Message, err
}

// AbortRestoreCluster is DELETE /api/v1/restore-cluster.
func (c *Client) AbortRestoreCluster(ctx context.Context) error {
	return c.mutate(ctx, "DELETE", "/api/v1/restore-cluster", nil, nil, nil)
}

// List is GET /api/v1/jobs.
func (c *Client) List(ctx context.Context) ([]jobs.Job, map[string][]jobs.Run, error) {
	var l JobList
	err := c.do(ctx, "GET", "/api/v1/jobs", nil, nil, &l)
	return l.Jobs, l.Runs, err
}

func jobPath(id string) string { return "/api/v1/jobs/" + url.PathEscape(id) }

// Get is GET /api/v1/jobs/{id}.
func (c *Client) Get(ctx context.Context, id string) (j jobs.Job, err error) {
	return j, c.do(ctx, "GET", jobPath(id), nil, nil, &j)
}

// Create builds the job here (from the blank job Create of package ops
// starts from) and sends it: POST /api/v1/jobs.
func (c *Client) Create(ctx context.Context, id string, edit func(*jobs.Job) error) (j jobs.Job, err error) {
	j = jobs.Job{ID: id, Name: id, Enabled: true}
	if err := edit(&j); err != nil {
		return j, badinput.Wrap(err)
	}
	return j, c.mutate(ctx, "POST", "/api/v1/jobs", nil, j, &j)
}

// Edit reads the job, edits it here and sends it: PUT /api/v1/jobs/{id}.
func (c *Client) Edit(ctx context.Context, id string, edit func(*jobs.Job) error) (jobs.Job, error) {
	j, err := c.Get(ctx, id)
	if err != nil {
		return j, err
	}
	if err := edit(&j); err != nil {
		return j, badinput.Wrap(err)
	}
	return j, c.mutate(ctx, "PUT", jobPath(id), nil, j, &j)
}

// Clone is POST /api/v1/jobs/{id}/clone.
func (c *Client) Clone(ctx context.Context, id, newID string) (j jobs.Job, err error) {
	return j, c.mutate(ctx, "POST", jobPath(id)+"/clone", nil, CloneBody{ID: newID}, &j)
}

// Delete is DELETE /api/v1/jobs/{id}.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.mutate(ctx, "DELETE", jobPath(id), nil, nil, nil)
}

// Start is POST /api/v1/jobs/{id}/start.
func (c *Client) Start(ctx context.Context, id string) (r jobs.Run, err error) {
	return r, c.mutate(ctx, "POST", jobPath(id)+"/start", nil, nil, &r)
}

// Stop is POST /api/v1/jobs/{id}/stop.
func (c *Client) Stop(ctx context.Context, id string) (r jobs.Run, err error) {
	return r, c.mutate(ctx, "POST", jobPath(id)+"/stop", nil, nil, &r)
}

// Runs is GET /api/v1/jobs/{id}/runs.
func (c *Client) Runs(ctx context.Context, id string) (r []jobs.Run, err error) {
	return r, c.do(ctx, "GET", jobPath(id)+"/runs", nil, nil, &r)
}

// AddUser is POST /api/v1/users.
func (c *Client) AddUser(ctx context.Context, b AddUserBody) (u NewUser, err error) {
	return u, c.mutate(ctx, "POST", "/api/v1/users", nil, b, &u)
}

// RemoveUser is DELETE /api/v1/users/{name}.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.mutate(ctx, "DELETE", "/api/v1/users/"+url.PathEscape(name), nil, nil, nil)
}

// ListUsers is GET /api/v1/users.
func (c *Client) ListUsers(ctx context.Context) (us []auth.Public, err error) {
	return us, c.do(ctx, "GET", "/api/v1/users", nil, nil, &us)
}
