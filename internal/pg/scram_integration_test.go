package pg_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/pg"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Issue 13: the replication role's password reaches PostgreSQL as a
// SCRAM-SHA-256 verifier, never as text a statement log could keep, and
// the verifier is the one PostgreSQL itself computes.
func TestReplicationPasswordIsSentAsAScramVerifier(t *testing.T) {
	p := testcluster.StartPostgres(t, testcluster.PGOptions{})
	p.Exec(t, "ALTER SYSTEM SET log_statement = 'all'")
	p.Exec(t, "SELECT pg_reload_conf()")
	const password = "Corr3ct-h0rse'battery"
	conn := p.Connect(t)
	defer conn.Close(context.Background())
	if err := pg.CreateReplicationRole(context.Background(), conn, "replicator", password); err != nil {
		t.Fatal(err)
	}
	stored := p.QueryString(t, "SELECT rolpassword FROM pg_authid WHERE rolname = 'replicator'")
	if !strings.HasPrefix(stored, "SCRAM-SHA-256$4096:") {
		t.Fatalf("stored secret %q is not a SCRAM-SHA-256 verifier", stored)
	}
	// PostgreSQL's own verifier for the same password and salt must be the
	// same: set it in plain text on another role, then recompute ours with
	// its salt.
	p.Exec(t, "SET password_encryption = 'scram-sha-256'; CREATE ROLE witness LOGIN PASSWORD 'Corr3ct-h0rse''battery'")
	theirs := p.QueryString(t, "SELECT rolpassword FROM pg_authid WHERE rolname = 'witness'")
	ours, err := pg.ScramVerifierWithSalt(password, theirs)
	if err != nil {
		t.Fatal(err)
	}
	if ours != theirs {
		t.Fatalf("our verifier %q differs from PostgreSQL's %q for the same salt", ours, theirs)
	}
	log := []byte(p.LogTail(1 << 20))
	lines := strings.Split(string(log), "\n")
	for _, l := range lines {
		if strings.Contains(l, "replicator") && strings.Contains(l, password) {
			t.Fatalf("the server log holds the replication password: %s", l)
		}
	}
	if !strings.Contains(string(log), "ALTER ROLE") && !strings.Contains(string(log), "CREATE ROLE") {
		t.Fatalf("the statement log did not record the role statement, so the check proves nothing:\n%s", lastLines(string(log), 20))
	}
}
