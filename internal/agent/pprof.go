package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// pprofEnv names a loopback address on which the agent serves Go's
// profiler (net/http/pprof), for measuring where an agent's CPU goes
// (docs/BENCHMARKS.md, "A quiet agent"). Unset, nothing listens. It is
// an environment variable, not a node.yaml setting: a diagnostic for the
// engineer at the machine, never something a cluster runs with.
const pprofEnv = "PGGUARD_PPROF_LISTEN"

// servePprof starts the profiler's listener when pprofEnv names a
// loopback address, and stops it with ctx.
func (a *Agent) servePprof(ctx context.Context) {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		a.log.Error("profiler not started: "+pprofEnv+" must be a loopback address and port, e.g. 127.0.0.1:6060", "value", addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		a.log.Error("profiler not started", "addr", addr, "err", err)
		return
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	a.log.Info("profiler listening", "addr", ln.Addr().String())
}
