// Package rest is the operator's REST API (/api/v1/ on every agent's API
// listener) and its client. Every route runs an operation of internal/ops
// — the functions `pgguard ctl` and `pgguard jobs` call — with the same
// checks; a mutating route with ?dry_run=1 answers the operation's plan
// (the `--check` answer) and changes nothing.
//
// Callers authenticate with a bearer token (a user's token or a console
// session) or a client certificate of the cluster's CA; each route needs
// a role (internal/auth). A refused call (401, 403) changes nothing; a
// refused mutating call is recorded in the history as api-refused.
package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/ops"
	"golang.org/x/time/rate"
)

// Store is what the API needs of the consensus store: the operations',
// the jobs', and the users and sessions.
type Store interface {
	ops.Store
	ops.JobStore
	Users(ctx context.Context) ([]auth.User, error)
	PutUser(ctx context.Context, u auth.User, create bool) error
	DeleteUser(ctx context.Context, name string) (bool, error)
	OpenSession(ctx context.Context, keyHash, user string, ttl time.Duration) error
	Session(ctx context.Context, keyHash string) (string, error)
	CloseSession(ctx context.Context, keyHash string) error
}

// Config is one agent's API.
type Config struct {
	Store   Store
	Cluster string
	// Node is the agent's name (history entries of refusals).
	Node string
	// Backups lists the node's repository (nil: the node has none).
	Backups func(ctx context.Context) (any, error)
	// SessionTTL is how long a console login lasts (default 8h).
	SessionTTL time.Duration
	Log        *slog.Logger
}

// Route is one route of the API: the pattern (method and path, as
// net/http's ServeMux reads it) and the role it needs.
type Route struct {
	Pattern string
	Role    auth.Role
	// Mutating: a refused call is recorded.
	Mutating bool
	// Check: the route answers ?dry_run=1 with the operation's plan; a
	// dry run of any other route is refused (400), never run.
	Check bool
	h     func(*call) (any, error)
}

type server struct {
	cfg    Config
	mux    *http.ServeMux
	routes []Route

	mu       sync.Mutex
	users    []auth.User
	usersAt  time.Time
	refusals refusalLimit
	// logins bounds the password checks running at once (each costs an
	// argon2id hash of 64 MiB).
	logins chan struct{}
	// misses bounds the store reads of unknown tokens.
	misses *rate.Limiter
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg, mux: http.NewServeMux(), logins: make(chan struct{}, 2),
		misses: rate.NewLimiter(missRate, missRate)}
	s.routes = s.table()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Pattern, s.handle(rt))
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such route: " + r.Method + " " + r.URL.Path + " (docs/api.yaml lists them)"})
	})
	return s.mux
}

// Routes lists every route of the API (docs/api.yaml must describe each).
func Routes() []Route { return (&server{}).table() }

// call is one request being answered.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	id     auth.Identity
	dryRun bool
	s      *server
	// progress collects the operation's progress lines for the answer.
	progress strings.Builder
}

// ops is the operations layer acting for the caller.
func (c *call) ops() *ops.Ops {
	return &ops.Ops{Store: c.s.cfg.Store, Cluster: c.s.cfg.Cluster, By: c.id.By(), Progress: &c.progress}
}

func (c *call) jobs() *ops.Jobs { return &ops.Jobs{Store: c.s.cfg.Store, By: c.id.By()} }

// decode reads the JSON body into v; an empty body leaves v as it is.
func (c *call) decode(v any) error {
	body, err := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
	if err != nil {
		return badRequest("read the request body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

// planned answers a dry run: the plan, whether it passes or not.
type planned struct {
	DryRun bool `json:"dry_run"`
	Plan   any  `json:"plan"`
}

// done is the answer of a mutating call that has no result of its own.
type done struct {
	OK       bool     `json:"ok"`
	Message  string   `json:"message,omitempty"`
	Progress []string `json:"progress,omitempty"`
}

func (c *call) done(msg string) done {
	return done{OK: true, Message: msg, Progress: lines(c.progress.String())}
}

// after is the answer of an operation that returned only err.
func (c *call) after(err error, msg string) (any, error) {
	if err != nil {
		return nil, err
	}
	return c.done(msg), nil
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// errorBody is every error answer; a refusal carries the plan.
type errorBody struct {
	Error string    `json:"error"`
	Plan  *ops.Plan `json:"plan,omitempty"`
	Hint  string    `json:"hint,omitempty"`
}

type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func (s *server) handle(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r, ctx: r.Context(), s: s, dryRun: r.URL.Query().Get("dry_run") == "1"}
		if rt.Role == "" { // the login itself
			v, err := rt.h(c)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, v)
			return
		}
		id, code, why := s.authenticate(r)
		if code == 0 && !id.Role.Allows(rt.Role) {
			code, why = http.StatusForbidden, fmt.Sprintf("%s needs the %s role; %s has %s", rt.Pattern, rt.Role, id.Name, id.Role)
		}
		if code != 0 {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pgguard"`)
			}
			if rt.Mutating {
				s.recordRefusal(r, rt, id, code)
			}
			writeJSON(w, code, errorBody{Error: why})
			return
		}
		c.id = id
		if c.dryRun && !rt.Check {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: rt.Pattern + " has no check (dry_run): it always applies as asked"})
			return
		}
		v, err := rt.h(c)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// writeError maps an operation's error to its status: bad input 400, a
// refusal 409 with the plan, a store that does not answer 503.
func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	var re *ops.RefusedError
	switch {
	case errors.As(err, &he):
		writeJSON(w, he.code, errorBody{Error: he.msg})
	case errors.As(err, &re):
		p := re.Plan
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error(), Plan: &p, Hint: re.Hint})
	case ops.IsInput(err):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
	case errors.Is(err, dcs.ErrExists), errors.Is(err, dcs.ErrChanged):
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error()})
	case errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error()})
	default:
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// refusalLimit bounds the refusals recorded in the history (a client
// retrying a bad token must not flood it): at most 10 a minute per agent.
type refusalLimit struct {
	window time.Time
	n      int
}

func (s *server) recordRefusal(r *http.Request, rt Route, id auth.Identity, code int) {
	s.mu.Lock()
	now := time.Now()
	if now.Sub(s.refusals.window) > time.Minute {
		s.refusals = refusalLimit{window: now}
	}
	s.refusals.n++
	over := s.refusals.n > 10
	s.mu.Unlock()
	if over {
		return
	}
	by := id.Name
	if by == "" {
		by = "anonymous from " + hostOf(r.RemoteAddr)
	}
	e := dcs.Event{Node: s.cfg.Node, Action: ha.EventAPIRefused, Target: rt.Pattern, By: by,
		Reason: fmt.Sprintf("%d %s", code, http.StatusText(code)), Result: "refused"}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.AppendHistory(ctx, e); err != nil {
		s.cfg.Log.Debug("api refusal not recorded", "err", err)
	}
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return addr[:i]
	}
	return addr
}
