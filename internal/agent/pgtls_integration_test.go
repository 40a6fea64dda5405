package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Issue 13 item 3 and issue 15 item 3: with the cluster's certificates,
// PostgreSQL serves TLS with the node's certificate, standbys stream over
// it with sslmode=verify-full against the cluster's CA, a client that
// cannot verify the server (no CA, a name the certificate does not hold)
// is refused before it logs in, and nothing is trusted on loopback: a
// connection without the password is refused.
func TestPostgresConnectionsAreEncryptedAndAuthenticated(t *testing.T) {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Nodes: 2})
	leader := c.Leader()
	standby := others(c.Layout.Nodes, leader)[0]
	port := c.Layout.PGPorts[0]
	if leader != c.Layout.Nodes[0] {
		port = c.Layout.PGPorts[1]
	}
	ca := certs.CAFile(c.Layout.CertsDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The walsender serving the standby runs over TLS.
	var ssl bool
	var version, conninfo string
	testcluster.WaitUntil(t, 60*time.Second, standby+" streaming over TLS", func() (bool, string) {
		conn, err := pgx.Connect(ctx, c.NodeDSN(leader))
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close(ctx)
		err = conn.QueryRow(ctx, `SELECT s.ssl, coalesce(s.version, '') FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)
WHERE r.application_name = $1 AND r.state = 'streaming'`, standby).Scan(&ssl, &version)
		return err == nil, fmt.Sprintf("pg_stat_ssl of %s's walsender: ssl=%v version=%q (%v)", standby, ssl, version, err)
	})
	if !ssl || !strings.HasPrefix(version, "TLSv1.") {
		t.Fatalf("%s streams from %s without TLS: pg_stat_ssl ssl=%v version=%q", standby, leader, ssl, version)
	}
	sconn, err := pgx.Connect(ctx, c.NodeDSN(standby))
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close(ctx)
	if err := sconn.QueryRow(ctx, `SELECT conninfo FROM pg_stat_wal_receiver`).Scan(&conninfo); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sslmode=verify-full", "sslrootcert=" + ca} {
		if !strings.Contains(conninfo, want) {
			t.Errorf("%s's walreceiver connects with %q, which lacks %s", standby, conninfo, want)
		}
	}
	// The agent's own connections (this probe is one) are on TLS too.
	var agentSSL int
	if err := sconn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'pgguard' AND s.ssl`).Scan(&agentSSL); err != nil || agentSSL == 0 {
		t.Errorf("no connection of %s's agent uses TLS (%d, %v)", standby, agentSSL, err)
	}

	// The key PostgreSQL serves with is the database account's alone.
	data := filepath.Join(c.Layout.NodeDir(leader), "data")
	st, err := os.Stat(filepath.Join(data, "pgguard-server.key"))
	if err != nil || st.Mode().Perm() != 0o600 || int(st.Sys().(*syscall.Stat_t).Uid) != testcluster.Account(t).UID {
		t.Fatalf("the server key in the data directory: %v (err %v), want mode 0600 owned by the database account", st, err)
	}
	hba, err := os.ReadFile(filepath.Join(data, "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(hba), "trust") || !strings.Contains(string(hba), "hostssl all all 0.0.0.0/0 scram-sha-256") ||
		!strings.Contains(string(hba), "hostssl replication all 0.0.0.0/0 scram-sha-256") {
		t.Fatalf("pg_hba.conf must trust no one and take other hosts over TLS only:\n%s", hba)
	}

	// Clients that cannot verify the server are refused, through pgx (the
	// agent's driver) and libpq (the walreceiver's, pg_basebackup's and
	// pg_rewind's).
	base := fmt.Sprintf("port=%d user=postgres dbname=postgres connect_timeout=5 passfile=%s", port, c.Layout.PGPassFile())
	refusals := []struct{ name, dsn, mention string }{
		{"verify-full without the cluster's CA", "host=127.0.0.1 sslmode=verify-full sslrootcert=" + otherCA(t) + " " + base, "certificate"},
		{"verify-full to a name the certificate does not hold", "host=db.invalid sslmode=verify-full sslrootcert=" + ca + " " + base, "db.invalid"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			err := pgxConnectVia127(ctx, r.dsn)
			if err == nil || !strings.Contains(err.Error(), r.mention) {
				t.Fatalf("pgx: %v; want a refusal naming %q", err, r.mention)
			}
			out, err := psql(t, strings.Replace(r.dsn, "host=db.invalid", "host=db.invalid hostaddr=127.0.0.1", 1))
			if err == nil || !strings.Contains(out, r.mention) {
				t.Fatalf("psql: %v: %s; want a refusal naming %q", err, out, r.mention)
			}
		})
	}
	if err := pgxConnectVia127(ctx, "host=127.0.0.1 sslmode=verify-full sslrootcert="+ca+" "+base); err != nil {
		t.Fatalf("the control: a client with the CA and the password cannot connect: %v", err)
	}
	if out, err := psql(t, "host=127.0.0.1 sslmode=verify-full sslrootcert="+ca+" "+base); err != nil {
		t.Fatalf("the control: psql with the CA and the password cannot connect: %v: %s", err, out)
	}

	// Loopback is not trusted: without the password, the server refuses.
	nopw := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=5 sslmode=verify-full sslrootcert=%s passfile=/nonexistent", port, ca)
	err = pgxConnectVia127(ctx, nopw)
	var pgErr *pgconn.PgError
	if err == nil || !(errors.As(err, &pgErr) && pgErr.Code == "28P01" || strings.Contains(err.Error(), "password")) {
		t.Fatalf("a loopback connection without a password: %v; want it refused for want of the password", err)
	}
	if out, err := psql(t, nopw); err == nil || !strings.Contains(out, "password") {
		t.Fatalf("psql on loopback without a password: %v: %s; want it refused", err, out)
	}
	c.WaitFor("the cluster still healthy", 10*time.Second, func(r status.Report) bool { return r.Leader == leader })
}

// pgxConnectVia127 connects with dsn, dialling 127.0.0.1 whatever host it
// names (the host stays the name the certificate is checked against).
func pgxConnectVia127(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cfg.LookupFunc = func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// psql runs one query through libpq with dsn and no password prompt, and
// no environment that could supply a password or a CA.
func psql(t *testing.T, dsn string) (string, error) {
	t.Helper()
	cmd := exec.Command("psql", "-w", "-XAtc", "SELECT 1", dsn)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// otherCA is the certificate of a CA the cluster's certificates do not
// come from.
func otherCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := certs.Init(dir, []string{"stranger"}, nil); err != nil {
		t.Fatal(err)
	}
	return certs.CAFile(dir)
}
