package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Source is what the server asks the agent at each request.
type Source interface {
	// Node is this node's view, with the lease read now.
	Node() Node
}

// Options are what one agent's listener serves besides the health
// endpoints; a nil handler is a 404.
type Options struct {
	// TLS, when set, makes the listener HTTPS (the health endpoints
	// included: a load balancer checks with check-ssl).
	TLS *tls.Config
	// API answers /api/v1/ (authenticated by the handler itself).
	API http.Handler
	// Metrics answers /metrics (Prometheus' text format).
	Metrics http.Handler
	// Console answers / and /console/ (the web console's assets).
	Console http.Handler
}

// Server is one agent's HTTP listener.
type Server struct {
	src  Source
	opts Options
	log  *slog.Logger
	srv  *http.Server
	ln   net.Listener
}

// Listen opens addr; Serve starts answering.
func Listen(addr string, src Source, opts Options, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", addr, err)
	}
	s := &Server{src: src, opts: opts, log: log, ln: ln}
	// WriteTimeout is longer than the longest wait an operation may ask
	// for (?wait= up to 30m); reads are short.
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 31 * time.Minute, IdleTimeout: 60 * time.Second, TLSConfig: opts.TLS,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers until Close.
func (s *Server) Serve() {
	var err error
	if s.opts.TLS != nil {
		err = s.srv.ServeTLS(s.ln, "", "")
	} else {
		err = s.srv.Serve(s.ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("api listener stopped", "err", err)
	}
}

// Close stops the listener and waits briefly for requests in flight.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// ServeHTTP sends /api/v1/, /metrics and the console to their handlers
// and answers the health endpoints itself (GET, HEAD and OPTIONS:
// HAProxy's httpchk sends OPTIONS unless told otherwise).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	var h http.Handler
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/api/"):
		h = s.opts.API
	case p == "/metrics":
		h = s.opts.Metrics
	case p == "/" || strings.HasPrefix(p, "/console/"):
		h = s.opts.Console
	default:
		s.health(w, r)
		return
	}
	if h == nil {
		writeJSON(w, r, http.StatusNotFound, map[string]string{"error": "not served by this agent"})
		return
	}
	h.ServeHTTP(w, r)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, found := Check(r.URL.Path, r.URL.Query(), s.src.Node(), time.Now())
	if !found {
		writeJSON(w, r, http.StatusNotFound, map[string]string{"error": "no such endpoint"})
		return
	}
	writeJSON(w, r, a.Code, a)
}

func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}
