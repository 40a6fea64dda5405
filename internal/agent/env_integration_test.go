package agent_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Issue 13: the postmaster, and so everything it runs (archive_command, a
// superuser's COPY … FROM PROGRAM), sees none of the agent's secrets.
func TestPostgresEnvironmentHoldsNoSecret(t *testing.T) {
	secrets := map[string]string{
		"PGGUARD_PASSPHRASE":    "repository-passphrase-in-the-agent",
		"PGGUARD_TO_PASSPHRASE": "copy-passphrase-in-the-agent",
		"AWS_SECRET_ACCESS_KEY": "cloud-key-in-the-agent",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	c := testcluster.StartCluster(t, testcluster.WithBackupRepo(testcluster.ClusterOptions{Nodes: 1}))
	pid := c.Layout.PostmasterPID("n1")
	if pid == 0 {
		t.Fatal("no postmaster")
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	check := func(where, env string) {
		t.Helper()
		for name, value := range secrets {
			if strings.Contains(env, value) || strings.Contains(env, name+"=") {
				t.Errorf("%s holds %s:\n%s", where, name, env)
			}
		}
		if !strings.Contains(env, "PGPASSFILE=") {
			t.Errorf("%s lacks PGPASSFILE, so this is not the environment the agent built:\n%s", where, env)
		}
	}
	check("the postmaster's environment", strings.ReplaceAll(string(environ), "\x00", "\n"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.NodeDSN("n1"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "create temp table e(line text); copy e from program 'env'"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "select line from e")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	check("a program the server runs (COPY … FROM PROGRAM)", strings.Join(lines, "\n"))
}
