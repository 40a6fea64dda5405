package pg_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// TestPromotionAfterAStalledSwitchSegmentReStream builds chaos finding 19
// with plain PostgreSQL servers. Standbys B and C replay all of A's WAL;
// A stops and B is promoted onto timeline 2, whose switch point lies in
// the middle of a segment. C follows B through a proxy that passes only
// the first part of what B sends: C streams the switch segment of
// timeline 1 again from its start, then timeline 2's copy of it from its
// start, and stalls 640 KiB into that. B is then lost. C's file of the
// segment on timeline 2 is short: zeros from a page before the switch
// point. Promoted as it is, C PANICs re-reading its last record; with
// pg.CompleteShortCopies run first, it is promoted and keeps every row.
func TestPromotionAfterAStalledSwitchSegmentReStream(t *testing.T) {
	t.Run("as PostgreSQL leaves it, the promotion PANICs; completed, a restart is promoted", func(t *testing.T) {
		c, rows := standbyWithAShortSwitchCopy(t)
		// The startup process may PANIC before the call returns, which ends
		// the connection too: the log, not the call, says what happened.
		_, _ = c.Connect(t).Exec(context.Background(), "SELECT pg_promote(wait => false)")
		testcluster.WaitUntil(t, 60*time.Second, "C's startup process PANICking", func() (bool, string) {
			log := c.LogTail(64 << 10)
			return strings.Contains(log, "PANIC") && strings.Contains(log, "invalid magic number 0000"), lastLines(log, 5)
		})
		for _, line := range strings.Split(c.LogTail(64<<10), "\n") {
			if strings.Contains(line, "invalid magic number") || strings.Contains(line, "PANIC") {
				t.Log(line)
			}
		}
		// What the agent does when it starts the server again
		// (pg.Instance.Start completes short copies whenever it starts a
		// server in recovery).
		c.Kill()
		if done, err := pg.CompleteShortCopies(filepath.Join(c.DataDir(), "pg_wal")); err != nil || len(done) != 1 {
			t.Fatalf("completed %v (err %v), want timeline 2's copy of the switch segment", done, err)
		}
		c.Start()
		promotedWithEveryRow(t, c, rows)
	})
	t.Run("with the short copy completed, C is promoted with every row", func(t *testing.T) {
		c, rows := standbyWithAShortSwitchCopy(t)
		done, err := pg.CompleteShortCopies(filepath.Join(c.DataDir(), "pg_wal"))
		if err != nil || len(done) != 1 || !strings.HasPrefix(done[0], "00000002") {
			t.Fatalf("completed %v (err %v), want timeline 2's copy of the switch segment", done, err)
		}
		promotedWithEveryRow(t, c, rows)
	})
}

// promotedWithEveryRow promotes c and checks it holds rows rows and takes
// a write.
func promotedWithEveryRow(t *testing.T, c *testcluster.Postgres, rows int) {
	t.Helper()
	c.Exec(t, "SELECT pg_promote()")
	ctx := context.Background()
	conn := c.Connect(t)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != rows {
		t.Fatalf("C promoted with %d rows (err %v), want %d\n%s", n, err, rows, lastLines(c.LogTail(64<<10), 10))
	}
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (0, 'after')"); err != nil {
		t.Fatalf("C not writable after its promotion: %v", err)
	}
	t.Logf("C promoted on %s with %d rows", c.QueryString(t, "SELECT pg_walfile_name(pg_current_wal_lsn())"), n)
}

// standbyWithAShortSwitchCopy makes the state of the test above and
// returns C, with B already killed, and the rows A wrote.
func standbyWithAShortSwitchCopy(t *testing.T) (*testcluster.Postgres, int) {
	t.Helper()
	ctx := context.Background()
	a := testcluster.StartPostgres(t, testcluster.PGOptions{Conf: []string{"wal_keep_size = '256MB'"}})
	a.Exec(t, "CREATE TABLE t (id int, pad text)")
	b := standbyOf(t, a)
	c := standbyOf(t, a)
	// About 3 MiB of WAL into a fresh segment: timeline 2 will fork there.
	a.Exec(t, "SELECT pg_switch_wal()")
	const rows = 2500
	a.Exec(t, fmt.Sprintf("INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series(1, %d) g", rows))
	waitRows(t, b, rows)
	waitRows(t, c, rows)
	a.Stop() // its shutdown checkpoint reaches both standbys
	var bEnd, cEnd string
	testcluster.WaitUntil(t, 30*time.Second, "B and C replaying to the same end", func() (bool, string) {
		bEnd = b.QueryString(t, "SELECT pg_last_wal_replay_lsn()")
		cEnd = c.QueryString(t, "SELECT pg_last_wal_replay_lsn()")
		return bEnd == cEnd, fmt.Sprintf("B at %s, C at %s", bEnd, cEnd)
	})

	b.Exec(t, "SELECT pg_promote()")
	hist, err := os.ReadFile(filepath.Join(b.DataDir(), "pg_wal", "00000002.history"))
	if err != nil {
		t.Fatalf("B's history of timeline 2: %v", err)
	}
	switches, err := pg.ParseHistory(string(hist))
	if err != nil || len(switches) != 1 {
		t.Fatalf("B's history %q: %v", hist, err)
	}
	switchAt := switches[0].Switch
	const segSize = 16 << 20
	offset := uint64(switchAt) % segSize
	if offset < 2<<20 {
		t.Fatalf("timeline 2 forks at %s, %d bytes into its segment; the test needs more than 2 MiB", switchAt, offset)
	}
	b.Exec(t, "INSERT INTO t VALUES (-1, 'timeline 2')") // not in C, which never gets that far

	// C streams the switch segment twice from its start (timeline 1 up to
	// the switch, then timeline 2's copy): pass the first and 640 KiB of
	// the second, with room for the messages' headers.
	proxy := startStallingProxy(t, fmt.Sprintf("127.0.0.1:%d", b.Port()), int64(offset)+640<<10)
	c.Exec(t, fmt.Sprintf("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=%d user=postgres'", proxy.port()))
	c.Exec(t, "SELECT pg_reload_conf()")
	short := filepath.Join(c.DataDir(), "pg_wal", lsn.SegmentName(2, switchAt.Segment(segSize), segSize))
	testcluster.WaitUntil(t, 60*time.Second, "C's copy of the switch segment on timeline 2, stalled", func() (bool, string) {
		if !proxy.stalled() {
			return false, fmt.Sprintf("the proxy has passed %d bytes", proxy.passed())
		}
		_, err := os.Stat(short)
		return err == nil, fmt.Sprintf("%s: %v", filepath.Base(short), err)
	})
	b.Kill()
	proxy.close()
	var rec bool
	if err := c.Connect(t).QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil || !rec {
		t.Fatalf("C in recovery %v (err %v), want a standby", rec, err)
	}
	return c, rows
}

// stallingProxy forwards one TCP connection at a time to a target and
// passes at most budget bytes from the server to the client; after that it
// holds the rest, as a walreceiver sees a primary whose host stopped
// answering.
type stallingProxy struct {
	ln     net.Listener
	target string
	budget int64

	mu    sync.Mutex
	sent  int64
	conns []net.Conn
}

func startStallingProxy(t *testing.T, target string, budget int64) *stallingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln, target: target, budget: budget}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *stallingProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *stallingProxy) passed() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

func (p *stallingProxy) stalled() bool { return p.passed() >= p.budget }

func (p *stallingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *stallingProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(server, client) }()
		go p.toClient(client, server)
	}
}

func (p *stallingProxy) toClient(client, server net.Conn) {
	buf := make([]byte, 8<<10)
	for {
		p.mu.Lock()
		room := p.budget - p.sent
		p.mu.Unlock()
		if room <= 0 {
			return // hold: nothing more is read from the server
		}
		n, err := server.Read(buf[:min(int64(len(buf)), room)])
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
			p.mu.Lock()
			p.sent += int64(n)
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}
