package failover

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/testcluster"
)

var pgbenchLoad = flag.Int("pgbench-load", 0, "during every trial, also run pgbench with this many clients against the primary through the same multi-host string (issue 16: users' machines are busy too); 0 runs none")

// loadLabel names the load in a result's label.
func loadLabel(label string) string {
	if *pgbenchLoad == 0 {
		return label
	}
	return fmt.Sprintf("%s, under pgbench -c %d", label, *pgbenchLoad)
}

// background is a pgbench load that follows the primary: pgbench ends
// when its connections break (a failover), and is started again at once
// through the multi-host string, as a user's application would reconnect.
type background struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	runs   int
	tx     int
	last   string // the end of the last finished run's output
}

// startLoad initializes pgbench's tables (scale 10) on the primary and
// runs `pgbench -c N` until stop; nil when -pgbench-load is 0.
func startLoad(b *testing.B, dsn string) *background {
	if *pgbenchLoad == 0 {
		return nil
	}
	pgbench := filepath.Join(testcluster.PGBinDir, "pgbench")
	if out, err := exec.Command(pgbench, "-i", "-q", "-s", "10", dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &background{cancel: cancel}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			// Runs of 5 s: most end by themselves and report what they
			// did (a run killed at the stop reports nothing); the end of
			// one is a restart like any other.
			out, _ := exec.CommandContext(ctx, pgbench, "-n", "-c", fmt.Sprint(*pgbenchLoad), "-j", "2", "-T", "5", dsn).CombinedOutput()
			l.mu.Lock()
			l.runs++
			l.tx += processed(string(out))
			if ctx.Err() == nil {
				l.last = string(out[max(0, len(out)-400):])
			}
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return l
}

// stop ends the load and logs how much of it ran.
func (l *background) stop(b *testing.B) {
	if l == nil {
		return
	}
	l.cancel()
	l.wg.Wait()
	b.Logf("pgbench load: %d runs, %d transactions reported by the runs that finished; the last ended with:\n%s", l.runs, l.tx, l.last)
}

// processed reads pgbench's "number of transactions actually processed:
// N" (or "N/M"), 0 when absent (a run cut short by a failover or a stop).
func processed(out string) int {
	const key = "number of transactions actually processed: "
	i := strings.Index(out, key)
	if i < 0 {
		return 0
	}
	var n int
	fmt.Sscanf(out[i+len(key):], "%d", &n)
	return n
}
