package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Server accepts PostgreSQL connections on a read-write and a read-only
// port and splices each to the backend the current route names.
type Server struct {
	log  *slog.Logger
	wait time.Duration

	mu      sync.Mutex
	route   Route
	changed chan struct{} // closed at every route change
	conns   map[*spliced]struct{}
	next    int // round robin over route.Replicas
	lns     []net.Listener
	wg      sync.WaitGroup
	closed  bool
	// waiting counts connections held while there is no backend.
	waiting atomic.Int32
}

// spliced is one proxied connection.
type spliced struct {
	client, backend net.Conn
	target          string
	rw              bool
}

func (c *spliced) close() {
	c.client.Close()
	c.backend.Close()
}

// Listen opens the ports ("" leaves one closed). wait bounds how long a new
// connection waits for a backend (a failover under way).
func Listen(rwAddr, roAddr string, wait time.Duration, log *slog.Logger) (*Server, error) {
	s := &Server{log: log, wait: wait, changed: make(chan struct{}), conns: map[*spliced]struct{}{}}
	for _, a := range []struct {
		addr string
		rw   bool
	}{{rwAddr, true}, {roAddr, false}} {
		if a.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.lns = append(s.lns, ln)
		s.wg.Add(1)
		go s.accept(ln, a.rw)
	}
	s.wg.Add(1)
	go s.expire()
	return s, nil
}

// HasPrimary reports whether the route names a primary now.
func (s *Server) HasPrimary() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.route.Primary != "" && time.Now().Before(s.route.ValidUntil)
}

// Waiting is how many new connections wait for a backend now.
func (s *Server) Waiting() int { return int(s.waiting.Load()) }

// Addrs are the listening addresses, read-write first.
func (s *Server) Addrs() []string {
	var out []string
	for _, ln := range s.lns {
		out = append(out, ln.Addr().String())
	}
	return out
}

// Update installs a new route: connections to a primary the route no
// longer names, and to a standby it no longer lists, are closed at once.
// A read-only connection the primary took while no standby qualified
// stays with it as long as it is the primary: its reads remain correct,
// and cutting it because a standby came back would fail a query that
// nothing was wrong with.
func (s *Server) Update(r Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	prev := s.route
	s.route = r
	if prev.Primary != r.Primary || !slices.Equal(prev.Replicas, r.Replicas) {
		close(s.changed)
		s.changed = make(chan struct{})
		s.log.Info("proxy route", "route", r.String())
	}
	s.dropLocked(time.Now())
}

// dropLocked closes every connection the route no longer allows.
func (s *Server) dropLocked(now time.Time) {
	primary := s.route.Primary
	if now.After(s.route.ValidUntil) {
		primary = ""
	}
	for c := range s.conns {
		keep := false
		switch {
		case c.rw:
			keep = c.target == primary
		default:
			keep = slices.Contains(s.route.Replicas, c.target) || (primary != "" && c.target == primary)
		}
		if !keep {
			c.close()
			delete(s.conns, c)
		}
	}
}

// expire closes read-write connections once the route is older than its
// validity (the agent stopped hearing from the store).
func (s *Server) expire() {
	defer s.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.dropLocked(time.Now())
		s.mu.Unlock()
	}
}

// target picks the backend of a new connection, or "" with the channel
// that closes at the next route change; blind when this node cannot see
// the store.
func (s *Server) target(rw bool) (string, <-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	primary := s.route.Primary
	if time.Now().After(s.route.ValidUntil) {
		primary = ""
	}
	if rw || len(s.route.Replicas) == 0 {
		return primary, s.changed, s.route.Blind
	}
	t := s.route.Replicas[s.next%len(s.route.Replicas)]
	s.next++
	return t, s.changed, s.route.Blind
}

// backendDialer reaches backends. Keepalives and TCP_USER_TIMEOUT close a
// spliced connection whose path to its backend died without a reset (a
// partition drops packets): unacknowledged data for 5 s, or an idle
// connection whose probes go unanswered for 8 s, and the client gets an
// error to reconnect on instead of hanging.
var backendDialer = &net.Dialer{
	Timeout:         time.Second,
	KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: time.Second, Count: 3},
	Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 5000)
		})
		return errors.Join(err, serr)
	},
}

func (s *Server) accept(ln net.Listener, rw bool) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c, rw)
	}
}

// handle waits (at most s.wait) for a backend that accepts the
// connection, then splices the two until either side ends or the route
// drops the backend. It closes the client at once when this node cannot
// see the store, or cannot reach the backend at all (a dial that times
// out: no path from here), so that a client with several hosts tries the
// next; it waits while there is no primary (a failover under way) or the
// backend refuses (it restarts).
func (s *Server) handle(client net.Conn, rw bool) {
	deadline := time.Now().Add(s.wait)
	for {
		target, changed, blind := s.target(rw)
		if blind {
			client.Close()
			return
		}
		if target != "" {
			backend, err := backendDialer.Dial("tcp", target)
			if err == nil {
				s.splice(client, backend, target, rw)
				return
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				s.log.Debug("proxy: no path to the backend", "backend", target, "err", err)
				client.Close()
				return
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			client.Close()
			return
		}
		// Wait for the next route, or retry a refused backend shortly.
		timer := time.NewTimer(min(left, 200*time.Millisecond))
		s.waiting.Add(1)
		select {
		case <-changed:
		case <-timer.C:
		}
		s.waiting.Add(-1)
		timer.Stop()
	}
}

func (s *Server) splice(client, backend net.Conn, target string, rw bool) {
	c := &spliced{client: client, backend: backend, target: target, rw: rw}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.close()
		return
	}
	s.conns[c] = struct{}{}
	// The route may have moved while we dialled.
	s.dropLocked(time.Now())
	_, alive := s.conns[c]
	s.mu.Unlock()
	if !alive {
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("proxy copy", "err", err)
		}
		done <- struct{}{}
	}
	go cp(backend, client)
	go cp(client, backend)
	<-done
	c.close()
	<-done
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops listening and closes every proxied connection.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	for _, ln := range s.lns {
		ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
