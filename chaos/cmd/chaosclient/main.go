// Command chaosclient is the workload of the chaos suite. It runs inside
// the client network namespace (the only place from which the cluster's
// addresses may be reached) and writes what it sees to files that the
// suite reads afterwards:
//
//	chaosclient run  -dsn DSN -nodes n1=host:port,... -dir OUT   until SIGTERM
//	chaosclient dump -dsn DSN -out FILE                          ids on the primary
//	chaosclient jobs -layout DIR -endpoints URL,...              the demo's default jobs
//
// run starts several writers, each inserting unique ids through the
// multi-host connection string (and, with -route, one more writer per
// extra path: the agents' proxy, the virtual IP) and appending every
// acknowledged write to OUT/acks (client id node ack-unix-nanos timeline
// sent-unix-nanos path system-identifier in-recovery), where the server's
// identity — its node name (cluster_name), system identifier, WAL
// insertion timeline and pg_is_in_recovery() — comes from the transaction
// that wrote the id, and a probe that asks every node every 100 ms (-probe)
// whether it can assign a transaction id, each node within its own timeout
// (-probe-timeout, 500 ms), appending one line per round to OUT/probe
// (start-nanos end-nanos writable-nodes...).
//
// It never retries a write under the same id: an unacknowledged write may
// or may not exist, so only acknowledged ones are checked.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgguard/pgguard/internal/demo"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chaosclient run|dump|jobs [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runCommand(ctx, os.Args[2:])
	case "dump":
		err = dumpCommand(ctx, os.Args[2:])
	case "jobs":
		err = jobsCommand(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: use run, dump or jobs", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaosclient:", err)
		os.Exit(1)
	}
}

// connect opens a connection whose cancelled queries close the socket at
// once. A cancel request could instead end a commit that waits for a
// synchronous standby with a warning and a success, reporting as
// acknowledged a write no standby has: the client must never do that.
func connect(ctx context.Context, dsn string, timeout time.Duration) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	// timeout is per host, as libpq's connect_timeout: a multi-host
	// string must get to its later hosts when the first one hangs.
	cctx, cancel := context.WithTimeout(ctx, timeout*time.Duration(1+len(cfg.Fallbacks)))
	defer cancel()
	return pgx.ConnectConfig(cctx, cfg)
}

// lineFile appends lines to a file, one write per line, so that a reader
// never sees half a record and nothing is lost when the process is killed.
type lineFile struct {
	mu sync.Mutex
	f  *os.File
}

func (l *lineFile) printf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	l.mu.Lock()
	_, _ = l.f.WriteString(s)
	l.mu.Unlock()
}

func runCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	dsn := fs.String("dsn", "", "multi-host connection string with target_session_attrs=read-write")
	nodes := fs.String("nodes", "", "name=host:port,... of every node, for the probe")
	dir := fs.String("dir", "", "directory for the acks and probe files")
	clients := fs.Int("clients", 3, "concurrent writers")
	interval := fs.Duration("interval", 20*time.Millisecond, "pause between two writes of one writer")
	probeEvery := fs.Duration("probe", 100*time.Millisecond, "probe round interval")
	probeTimeout := fs.Duration("probe-timeout", 500*time.Millisecond, "how long a node may take to connect and to assign a transaction id before a round counts it not writable (a slow primary is still a primary)")
	idBase := fs.Int64("id-base", 0, "first id; writer k uses id-base + k*1e9 + n")
	writeTimeout := fs.Duration("write-timeout", 60*time.Second, "give up on one write after this long (longer than ha.sync_timeout)")
	var routes []string
	fs.Func("route", "NAME=DSN: one more writer through another path to the primary (repeatable), e.g. proxy=host=a,b,c port=6432", func(v string) error {
		if name, dsn, ok := strings.Cut(v, "="); !ok || name == "" || dsn == "" {
			return fmt.Errorf("want NAME=DSN, got %q", v)
		}
		routes = append(routes, v)
		return nil
	})
	_ = fs.Parse(args)
	if *dsn == "" || *dir == "" || *nodes == "" {
		return errors.New("run: -dsn, -nodes and -dir are required")
	}
	targets := map[string]string{}
	for _, part := range strings.Split(*nodes, ",") {
		name, addr, ok := strings.Cut(part, "=")
		host, port, ok2 := strings.Cut(addr, ":")
		if !ok || !ok2 {
			return fmt.Errorf("run: -nodes %q: want name=host:port", part)
		}
		targets[name] = fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres", host, port)
	}
	if err := createTable(ctx, *dsn); err != nil {
		return err
	}
	open := func(name string) (*lineFile, error) {
		f, err := os.OpenFile(filepath.Join(*dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		return &lineFile{f: f}, nil
	}
	acks, err := open("acks")
	if err != nil {
		return err
	}
	defer acks.f.Close()
	probe, err := open("probe")
	if err != nil {
		return err
	}
	defer probe.f.Close()
	var wg sync.WaitGroup
	for k := 0; k < *clients; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			write(ctx, *dsn, "direct", k, *idBase+int64(k)*1_000_000_000, *interval, *writeTimeout, acks)
		}()
	}
	for i, r := range routes {
		name, rdsn, _ := strings.Cut(r, "=")
		k := *clients + i
		wg.Add(1)
		go func() {
			defer wg.Done()
			write(ctx, rdsn, name, k, *idBase+int64(k)*1_000_000_000, *interval, *writeTimeout, acks)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		probeNodes(ctx, targets, *probeEvery, *probeTimeout, probe)
	}()
	wg.Wait()
	return nil
}

// createTable retries until the table exists or ctx ends.
func createTable(ctx context.Context, dsn string) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		conn, err := connect(ctx, dsn, 2*time.Second)
		if err == nil {
			_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS chaos_writes (id bigint PRIMARY KEY, client int NOT NULL, at timestamptz NOT NULL DEFAULT now())`)
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("create table chaos_writes: %v", last)
}

func write(ctx context.Context, dsn, route string, client int, first int64, interval, timeout time.Duration, out *lineFile) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	next := first
	for ctx.Err() == nil {
		if conn == nil {
			c, err := connect(ctx, dsn, 2*time.Second)
			if err != nil {
				pause(ctx, interval)
				continue
			}
			conn = c
		}
		id := next
		next++ // an unacknowledged id may or may not exist: never reuse it
		wctx, cancel := context.WithTimeout(ctx, timeout)
		var server, walfile, sysid string
		var inRecovery bool
		sent := time.Now()
		// The identity of the server that commits the id, from the same
		// transaction: its node name (pgguard sets cluster_name to it; the
		// server's address would be the virtual IP on that route), its
		// system identifier, its WAL insertion timeline (pg_walfile_name
		// names the segment with the timeline the server inserts on) and
		// whether it was in recovery (it cannot be and still insert: a
		// record saying so is a finding).
		err := conn.QueryRow(wctx, `INSERT INTO chaos_writes (id, client) VALUES ($1, $2)
			RETURNING current_setting('cluster_name'), pg_walfile_name(pg_current_wal_lsn()),
				(SELECT system_identifier::text FROM pg_control_system()), pg_is_in_recovery()`, id, client).Scan(&server, &walfile, &sysid, &inRecovery)
		cancel()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			pause(ctx, interval)
			continue
		}
		tli := "0"
		if len(walfile) == 24 {
			tli = strings.TrimLeft(walfile[:8], "0")
		}
		out.printf("%d %d %s %d %s %d %s %s %t\n", client, id, server, time.Now().UnixNano(), tli, sent.UnixNano(), route, sysid, inRecovery)
		pause(ctx, interval)
	}
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// probeNodes asks every node each round whether it can assign a
// transaction id: what every write needs and what a standby or a fenced
// node cannot do. A round starts every interval, or as soon as the one
// before ended when that one ran longer: a node gets timeout to connect
// and to answer, apart from the interval, so that a primary slowed by the
// fault still counts as writable.
func probeNodes(ctx context.Context, targets map[string]string, every, timeout time.Duration, out *lineFile) {
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	conns := make([]*pgx.Conn, len(names))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		writable := make([]bool, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if conns[i] == nil {
					c, err := connect(ctx, targets[n], timeout)
					if err != nil {
						return
					}
					conns[i] = c
				}
				qctx, cancel := context.WithTimeout(ctx, timeout)
				_, err := conns[i].Exec(qctx, `BEGIN; SELECT txid_current(); ROLLBACK`)
				cancel()
				if err != nil {
					conns[i].Close(context.Background())
					conns[i] = nil
					return
				}
				writable[i] = true
			}()
		}
		wg.Wait()
		var w []string
		for i, ok := range writable {
			if ok {
				w = append(w, names[i])
			}
		}
		out.printf("%d %d %s\n", start.UnixNano(), time.Now().UnixNano(), strings.Join(w, " "))
	}
}

func dumpCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dump", flag.ExitOnError)
	dsn := fs.String("dsn", "", "connection string of the node to read")
	out := fs.String("out", "", "file to write the ids to, one a line")
	_ = fs.Parse(args)
	if *dsn == "" || *out == "" {
		return errors.New("dump: -dsn and -out are required")
	}
	conn, err := connect(ctx, *dsn, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dump: connect: %w", err)
	}
	defer conn.Close(context.Background())
	// The final read counts only on a primary out of recovery: a standby
	// (or a node still catching up) may lack writes the primary has.
	var inRecovery bool
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	if inRecovery {
		return errors.New("dump: the node is in recovery, not the primary")
	}
	rows, err := conn.Query(ctx, `SELECT id FROM chaos_writes`)
	if err != nil {
		return fmt.Errorf("dump: read chaos_writes: %w", err)
	}
	defer rows.Close()
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			f.Close()
			return err
		}
		fmt.Fprintln(w, id)
	}
	if err := rows.Err(); err != nil {
		f.Close()
		return fmt.Errorf("dump: %w", err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// jobsCommand installs the demo's default backup jobs (demo.DefaultJobs:
// a first full backup at once, the daily and hourly schedule, a drill three
// minutes after) in the cluster laid out in DIR, through the store
// endpoints given: the cluster then runs as `pgguard demo up` ships it. It
// runs in the client namespace, the only one that reaches the store.
func jobsCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jobs", flag.ExitOnError)
	dir := fs.String("layout", "", "the cluster's directory (its demo.json)")
	endpoints := fs.String("endpoints", "", "the store's client URLs, comma-separated")
	_ = fs.Parse(args)
	if *dir == "" || *endpoints == "" {
		return errors.New("jobs: -layout and -endpoints are required")
	}
	l, err := demo.LoadLayout(*dir)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	l.External, l.ExternalTLS = strings.Split(*endpoints, ","), l.TLS
	list, err := l.InstallJobs(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("jobs: install the demo's default jobs: %w", err)
	}
	for _, j := range list {
		fmt.Println(j.ID)
	}
	return nil
}
