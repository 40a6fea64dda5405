package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/pgguard/pgguard/internal/status"
)

// Source is what the server asks the agent at each request.
type Source interface {
	// Node is this node's view, with the lease read now.
	Node() Node
	// Cluster is the status report of the agent's last read of the store
	// (ok false before the first).
	Cluster() (status.Report, bool)
}

// Server is one agent's HTTP listener.
type Server struct {
	src Source
	log *slog.Logger
	srv *http.Server
	ln  net.Listener
}

// Listen opens addr; Serve starts answering.
func Listen(addr string, src Source, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", addr, err)
	}
	s := &Server{src: src, log: log, ln: ln}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers until Close.
func (s *Server) Serve() {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("api listener stopped", "err", err)
	}
}

// Close stops the listener and waits briefly for requests in flight.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// ServeHTTP answers the health endpoints (GET, HEAD and OPTIONS: HAProxy's
// httpchk sends OPTIONS unless told otherwise) and /cluster.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/cluster" {
		rep, ok := s.src.Cluster()
		if !ok {
			writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"error": "the agent has not read the store yet"})
			return
		}
		writeJSON(w, r, http.StatusOK, rep)
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
