package agent

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
)

// trusted checks ha.trusted_addresses (HA-10): a node that reaches none
// of them counts itself isolated and does not campaign. "host:port" is a
// TCP connect, "host" one ping.
type trusted struct {
	addrs []string
	mu    sync.Mutex
	why   string // "" while one address answers
}

// isolated says why the node counts itself cut off ("" when it does not).
func (t *trusted) isolated() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.why
}

// probe tries every address at once and records the outcome.
func (t *trusted) probe(ctx context.Context) (changed bool, why string) {
	errs := make([]string, len(t.addrs))
	var wg sync.WaitGroup
	for i, a := range t.addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := reach(ctx, a); err != nil {
				errs[i] = a + ": " + err.Error()
			}
		}()
	}
	wg.Wait()
	why = ""
	reached := false
	for _, e := range errs {
		reached = reached || e == ""
	}
	if !reached {
		why = "cannot reach any of ha.trusted_addresses (" + strings.Join(errs, "; ") + ")"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	changed = (t.why == "") != (why == "")
	t.why = why
	return changed, why
}

func reach(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, _, err := net.SplitHostPort(addr); err == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	out, err := exec.CommandContext(ctx, "ping", "-c", "1", "-W", "1", "-n", "-q", addr).CombinedOutput()
	if err != nil {
		if last := strings.TrimSpace(string(out)); last != "" {
			lines := strings.Split(last, "\n")
			return fmt.Errorf("ping: %s", lines[len(lines)-1])
		}
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// watchTrusted probes every second until ctx ends, recording changes.
func (a *Agent) watchTrusted(ctx context.Context) {
	ticks(ctx, time.Second, func() bool {
		if changed, why := a.trust.probe(ctx); changed && ctx.Err() == nil {
			if why != "" {
				a.log.Warn("isolated: not campaigning", "why", why)
				a.record(ctx, ha.EventIsolated, "", why, "observed")
			} else {
				a.log.Info("a trusted address answers again")
				a.record(ctx, ha.EventConnected, "", "a trusted address answers again", "observed")
			}
		}
		return true
	})
}
