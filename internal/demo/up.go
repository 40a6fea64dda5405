package demo

import (
	"context"
	"fmt"
	"github.com/pgguard/pgguard/internal/certs"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/osuser"
	"github.com/pgguard/pgguard/internal/status"
)

// UpRequest is a demo cluster to create and start.
type UpRequest struct {
	Dir     string
	Nodes   int  // database nodes, 1 to 9
	Base    int  // PostgreSQL port of the first node
	Witness bool // add w1, an etcd member that runs no PostgreSQL
	Proxy   bool // give every agent a built-in proxy
	HAProxy bool // also run HAProxy in front of the nodes
	// Executable is the pgguard binary the agents run.
	Executable string
}

// UpResult is the running demo.
type UpResult struct {
	Layout Layout
	Status status.Report
	Jobs   []jobs.Job
}

// Up creates and starts the demo cluster and returns when it is healthy,
// its backup jobs installed. It writes what it does, then the cluster's
// status and how to use it, to out.
func Up(ctx context.Context, req UpRequest, out io.Writer) (UpResult, error) {
	var res UpResult
	l, err := req.layout()
	if err != nil {
		return res, err
	}
	acct, err := osuser.Resolve("")
	if err != nil {
		return res, err
	}
	if err := l.Write(acct, l.WithBackups); err != nil {
		return res, err
	}
	if err := l.InitRepository(req.Executable, acct); err != nil {
		return res, err
	}
	for i, n := range l.Nodes {
		pid, err := l.StartNode(req.Executable, n)
		if err != nil {
			return res, err
		}
		if l.IsWitness(n) {
			fmt.Fprintf(out, "started %s (agent pid %d, a witness: etcd member only)\n", n, pid)
			continue
		}
		fmt.Fprintf(out, "started %s (agent pid %d, PostgreSQL on 127.0.0.1:%d)\n", n, pid, l.PGPorts[i])
	}
	fmt.Fprintln(out, "waiting for the cluster to become healthy…")
	started := time.Now()
	r, err := l.WaitHealthy(ctx, 180*time.Second, func(status.Report) {})
	if err != nil {
		return res, fmt.Errorf("%w (agent logs: %s/NODE/agent.log)", err, req.Dir)
	}
	res.Layout, res.Status = l, r
	fmt.Fprintf(out, "healthy after %s\n", time.Since(started).Round(100*time.Millisecond))
	if err := l.CreateAdmin(ctx); err != nil {
		return res, err
	}
	if req.HAProxy {
		pid, err := l.StartHAProxy()
		if err != nil {
			return res, err
		}
		fmt.Fprintf(out, "started haproxy (pid %d): read-write 127.0.0.1:%d, read-only 127.0.0.1:%d\n", pid, l.HAProxy[0], l.HAProxy[1])
	}
	if req.Proxy {
		e := l.ClientEndpoints()
		fmt.Fprintf(out, "built-in proxies: read-write %s, read-only %s (psql 'host=%s port=%s user=postgres %s')\n", e.RW, e.RO,
			strings.Repeat("127.0.0.1,", len(l.ProxyRW)-len(l.Witnesses)-1)+"127.0.0.1", proxyPortList(l), l.ClientParams())
	}
	fmt.Fprintln(out)
	_ = r.WriteTable(out)
	if res.Jobs, err = l.InstallJobs(ctx, time.Now()); err != nil {
		return res, fmt.Errorf("install the default backup jobs: %w", err)
	}
	res.writeGuide(out)
	return res, nil
}

// layout checks the request and lays the cluster out; every error is
// bad input.
func (req UpRequest) layout() (Layout, error) {
	if req.Nodes < 1 || req.Nodes > 9 {
		return Layout{}, badinput.Errorf("--nodes %d: choose 1 to 9", req.Nodes)
	}
	if req.Base < 4100 || req.Base > MaxBase {
		return Layout{}, badinput.Errorf("--base-port %d: choose a port between 4100 and %d (etcd uses base-3000 and up, the agents' API base+3000 and up)", req.Base, MaxBase)
	}
	if req.HAProxy {
		if _, err := exec.LookPath("haproxy"); err != nil {
			return Layout{}, badinput.Errorf("--haproxy: haproxy is not installed: apt-get install -y haproxy (make setup does)")
		}
	}
	if old, err := LoadLayout(req.Dir); err == nil {
		for _, n := range old.Nodes {
			if old.AgentPID(n) > 0 {
				return Layout{}, badinput.Errorf("a demo cluster already runs in %s (node %s): 'pgguard demo down --dir %s' first", req.Dir, n, req.Dir)
			}
		}
		return Layout{}, badinput.Errorf("%s holds a stopped demo cluster: start its nodes with 'pgguard demo start NODE --dir %s', or remove the directory", req.Dir, req.Dir)
	}
	size := req.Nodes
	if req.Witness {
		size++
	}
	l := NewLayout(req.Dir, size, req.Base)
	l.APITLS = true
	if req.Witness {
		l.AddWitness()
	}
	if req.HAProxy {
		l.WithHAProxy()
	}
	if req.Proxy {
		l.WithProxy()
	}
	return l, badinput.Wrap(l.CheckPortsFree())
}

// writeGuide says where the backups go and how to use the demo.
func (res UpResult) writeGuide(out io.Writer) {
	l, dir, leader := res.Layout, res.Layout.Dir, res.Status.Leader
	e := l.ClientEndpoints()
	api, ca := e.API[0], certs.CAFile(l.CertsDir())
	fmt.Fprintf(out, "\nBackups: repository %s (key %s), WAL archived from every primary; jobs:\n", l.RepoDir(), l.KeyFile())
	for _, j := range res.Jobs {
		fmt.Fprintf(out, "  %-14s %-7s %s\n", j.ID, j.Kind, j.Schedule.String())
	}
	fmt.Fprintf(out, `
Connect (follows the primary across failovers):
  psql '%s'
Status:     pgguard ctl -c %s/ctl.yaml status
Backups:    pgguard backups -c %s/n1/node.yaml      Jobs: pgguard jobs -c %s/ctl.yaml runs
Fail over:  pgguard demo kill %s --dir %s   (then: pgguard demo start %s --dir %s)
Stop:       pgguard demo down --dir %s
Store:      etcd over TLS, every client and peer with a certificate of the demo's CA (%s; ctl.yaml names ctl's)
Database:   PostgreSQL over TLS with the same CA, no connection without a password (generated: %s, named in the string above)
Health:     curl -s --cacert %s %s/primary   (/replica, /read-only, /sync, /async, /health; 'pgguard demo endpoints')
API:        curl -s --cacert %s -H "Authorization: Bearer $(cat %s)" %s/api/v1/cluster
            pgguard ctl -c %s status    (ctl through the API with the admin token)
Console:    %s   (user admin, password in %s)
Metrics:    %s
`, l.DSN(), dir, dir, dir, leader, dir, leader, dir, dir, l.CertsDir(), l.PGPassFile(), ca, api, ca, l.TokenFile(), api, l.CtlAPIPath(), e.Console, l.PasswordFile(), strings.Join(e.Metrics, " "))
}

// proxyPortList is the read-write proxy ports of the database nodes, for a
// libpq host list.
func proxyPortList(l Layout) string {
	var ports []string
	for i, n := range l.Nodes {
		if !l.IsWitness(n) && i < len(l.ProxyRW) {
			ports = append(ports, strconv.Itoa(l.ProxyRW[i]))
		}
	}
	return strings.Join(ports, ",")
}

// Down stops every process the demo started (the directory stays), saying
// on out what it stopped; the first failure is returned after the rest
// were stopped.
func (l Layout) Down(out io.Writer) error {
	var firstErr error
	if l.HAProxyPID() > 0 {
		if err := l.StopHAProxy(10 * time.Second); err != nil {
			firstErr = err
		}
		fmt.Fprintln(out, "stopped haproxy")
	}
	for _, n := range l.Nodes {
		if l.AgentPID(n) == 0 && l.PostmasterPID(n) == 0 {
			continue
		}
		if err := l.StopNode(n, 90*time.Second); err != nil && firstErr == nil {
			firstErr = err
		}
		fmt.Fprintf(out, "stopped %s\n", n)
	}
	return firstErr
}

// Node resolves a node name of the demo commands: "primary" is whichever
// node leads now (the primary moves with every failover, so scripts and
// the README need not guess); any other name is taken as it is.
func (l Layout) Node(ctx context.Context, name string) (string, error) {
	if name != "primary" {
		return name, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := l.Status(ctx)
	if err != nil || r.Leader == "" {
		return "", fmt.Errorf("which node is primary: no leader known (%v)", err)
	}
	return r.Leader, nil
}
