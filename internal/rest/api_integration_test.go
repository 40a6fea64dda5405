package rest_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/pgguard/pgguard/internal/rest"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// apiCluster is a TLS cluster with one user of each role.
type apiCluster struct {
	*testcluster.Cluster
	tokens map[auth.Role]string
	roots  *tls.Config
}

func startAPICluster(t *testing.T) *apiCluster {
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{APITLS: true})
	ac := &apiCluster{Cluster: c, tokens: map[auth.Role]string{}}
	for _, r := range []auth.Role{auth.Viewer, auth.Operator, auth.Admin} {
		tok, _, err := c.Layout.CreateUser(context.Background(), string(r)+"-user", r, false)
		if err != nil {
			t.Fatal(err)
		}
		ac.tokens[r] = tok
	}
	roots, err := certs.RootsConfig(certs.CAFile(c.Layout.CertsDir()))
	if err != nil {
		t.Fatal(err)
	}
	ac.roots = roots
	return ac
}

func (c *apiCluster) client(t *testing.T, token string) *rest.Client {
	cl, err := rest.NewClient(c.Layout.ClientEndpoints().API, token, c.roots)
	if err != nil {
		t.Fatal(err)
	}
	cl.Cluster = c.Layout.Cluster
	return cl
}

// raw sends one request to the first agent and returns the status and body.
func (c *apiCluster) raw(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, c.Layout.ClientEndpoints().API[0]+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.roots.Clone()}, Timeout: 90 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *apiCluster) history(t *testing.T) []dcs.Event {
	t.Helper()
	ev, err := c.client(t, c.tokens[auth.Viewer]).History(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func count(events []dcs.Event, kind ha.Kind) int {
	n := 0
	for _, e := range events {
		if e.Action == kind {
			n++
		}
	}
	return n
}

func TestAPIRefusesWithoutTokenOrRoleAndChangesNothing(t *testing.T) {
	c := startAPICluster(t)
	leader := c.Leader()
	before := c.history(t)

	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a bad token", "pgg_not-a-token", http.StatusUnauthorized},
		{"a viewer", c.tokens[auth.Viewer], http.StatusForbidden},
	} {
		code, body := c.raw(t, "POST", "/api/v1/switchover", tc.token, `{}`)
		if code != tc.want {
			t.Fatalf("%s: POST /api/v1/switchover answered %d, want %d: %s", tc.name, code, tc.want, body)
		}
		if strings.Contains(body, "pgg_") {
			t.Fatalf("%s: the answer echoes a token: %s", tc.name, body)
		}
	}
	// A viewer reads; an operator may not take over; health needs nothing.
	if code, body := c.raw(t, "GET", "/api/v1/cluster", c.tokens[auth.Viewer], ""); code != 200 || !strings.Contains(body, leader) {
		t.Fatalf("viewer GET /api/v1/cluster: %d %s", code, body)
	}
	if code, body := c.raw(t, "POST", "/api/v1/takeover", c.tokens[auth.Operator], `{}`); code != http.StatusForbidden {
		t.Fatalf("operator POST /api/v1/takeover: %d %s, want 403", code, body)
	}
	if code, body := c.raw(t, "GET", "/api/v1/cluster", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /api/v1/cluster: %d %s, want 401", code, body)
	}
	if code, body := c.raw(t, "GET", "/primary", "", ""); code != 200 && code != 503 || strings.Contains(body, "members") {
		t.Fatalf("GET /primary over HTTPS: %d %s", code, body)
	}

	// A dry run of a route without a check is refused, not run.
	if code, body := c.raw(t, "POST", "/api/v1/pause?dry_run=1", c.tokens[auth.Operator], `{}`); code != 400 || !strings.Contains(body, "no check") {
		t.Fatalf("POST /api/v1/pause?dry_run=1: %d %s, want 400", code, body)
	}
	if cfg, err := c.client(t, c.tokens[auth.Viewer]).Config(context.Background()); err != nil || cfg.Paused {
		t.Fatalf("after a refused dry run of pause: paused %v (%v)", cfg.Paused, err)
	}

	after := c.history(t)
	if got := count(after, ha.EventAPIRefused) - count(before, ha.EventAPIRefused); got != 4 {
		t.Fatalf("%d api-refused entries, want 4 (three refused switchovers, one takeover)", got)
	}
	if n := count(after, ha.EventSwitchoverRequest) + count(after, ha.EventTakeoverRequest); n != 0 {
		t.Fatalf("a refused call requested something: %d requests in the history", n)
	}
	for _, e := range after {
		if e.Action == ha.EventAPIRefused && strings.Contains(e.Target+e.Reason+e.By, "pgg_") {
			t.Fatalf("a refusal recorded the token: %+v", e)
		}
	}
	if r, _ := c.Status(); r.Leader != leader {
		t.Fatalf("the leader changed from %s to %s", leader, r.Leader)
	}
}

func TestAPISwitchoverDryRunThenRunRecordsWho(t *testing.T) {
	c := startAPICluster(t)
	ctx := context.Background()
	leader := c.Leader()
	op := c.client(t, c.tokens[auth.Operator])

	// The dry run answers the plan and changes nothing.
	code, body := c.raw(t, "POST", "/api/v1/switchover?dry_run=1", c.tokens[auth.Operator], `{}`)
	var p rest.SwitchoverPlan
	if code != 200 || json.Unmarshal([]byte(body), &p) != nil || !p.DryRun || !p.Plan.OK || p.From != leader {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if count(c.history(t), ha.EventSwitchoverRequest) != 0 {
		t.Fatal("a dry run requested a switchover")
	}
	// Bad input is 400 and names the field.
	if code, body := c.raw(t, "POST", "/api/v1/switchover", c.tokens[auth.Operator], `{"to":"n9"}`); code != 400 || !strings.Contains(body, "n9") {
		t.Fatalf("switchover to n9: %d %s", code, body)
	}

	res, err := op.Switchover(ctx, ops.SwitchoverRequest{To: p.To, Settle: 10 * time.Second, Wait: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != leader || res.To != p.To {
		t.Fatalf("switchover %s -> %s, planned %s -> %s", res.From, res.To, leader, p.To)
	}
	c.WaitFor("the new primary", 60*time.Second, func(r status.Report) bool { return r.Leader == p.To })
	var by string
	for _, e := range c.history(t) {
		if e.Action == ha.EventSwitchoverRequest {
			by = e.By
		}
	}
	if by != "operator-user (api token)" {
		t.Fatalf("the switchover request was recorded by %q", by)
	}
}

func TestCtlThroughTheAPI(t *testing.T) {
	c := startAPICluster(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(c.tokens[auth.Viewer]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "ctl.yaml")
	if err := os.WriteFile(cfg, []byte(c.Layout.CtlAPIYAML(tokenFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(c.Exe, append([]string{"ctl", "-c", cfg}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := run("status", "-o", "json")
	var r status.Report
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || len(r.Members) != 3 {
		t.Fatalf("ctl status through the API: %v\n%s", err, out)
	}
	// --check works for a viewer? No: it is a mutating route's dry run,
	// which needs the operator role; the refusal names it.
	out, err = run("switchover", "--check")
	if err == nil || !strings.Contains(out, "403") || !strings.Contains(out, "operator") {
		t.Fatalf("viewer ctl switchover --check: %v\n%s", err, out)
	}
	// An admin (the demo's file) sees the check and adds a user.
	admin, _, err := c.Layout.CreateUser(context.Background(), "root-admin", auth.Admin, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(admin), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := c.raw(t, "GET", "/api/v1/whoami", admin, ""); code != 200 {
		t.Fatalf("whoami with the new admin's token: %d %s", code, body)
	}
	if out, err = run("switchover", "--check"); err != nil || !strings.Contains(out, "[pass]") {
		t.Fatalf("admin ctl switchover --check: %v\n%s", err, out)
	}
	if out, err = run("users", "add", "carol", "--role", "operator", "-o", "json"); err != nil {
		t.Fatalf("ctl users add: %v\n%s", err, out)
	}
	var nu rest.NewUser
	if json.Unmarshal([]byte(out), &nu) != nil || !strings.HasPrefix(nu.Token, auth.TokenPrefix) || nu.User.Role != auth.Operator {
		t.Fatalf("ctl users add printed %s", out)
	}
	if code, body := c.raw(t, "GET", "/api/v1/whoami", nu.Token, ""); code != 200 || !strings.Contains(body, `"role":"operator"`) {
		t.Fatalf("whoami with carol's token: %d %s", code, body)
	}
	if out, err = run("users", "list"); err != nil || strings.Contains(out, nu.Token) || strings.Contains(out, "sha256") {
		t.Fatalf("ctl users list: %v\n%s", err, out)
	}
}

func TestAPIClientCertificateAndConsoleLogin(t *testing.T) {
	c := startAPICluster(t)
	l := c.Layout
	// The ctl certificate of the cluster's CA is an administrator.
	withCert, err := certs.ClientConfig(certs.CAFile(l.CertsDir()), certs.CertFile(l.CertsDir(), certs.ClientName), certs.KeyFile(l.CertsDir(), certs.ClientName))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: withCert}}
	resp, err := hc.Get(l.ClientEndpoints().API[1] + "/api/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"role":"admin"`) || !strings.Contains(string(b), `"via":"certificate"`) {
		t.Fatalf("whoami with the ctl certificate: %d %s", resp.StatusCode, b)
	}

	// A user with a password logs in; the session works on every agent
	// and ends at logout.
	if err := l.CreateAdmin(context.Background()); err != nil {
		t.Fatal(err)
	}
	pw, _ := os.ReadFile(l.PasswordFile())
	code, body := c.raw(t, "POST", "/api/v1/login", "", fmt.Sprintf(`{"user":"admin","password":%q}`, strings.TrimSpace(string(pw))))
	var s rest.Session
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil || !strings.HasPrefix(s.Token, rest.SessionPrefix) {
		t.Fatalf("login: %d %s", code, body)
	}
	if code, body := c.raw(t, "POST", "/api/v1/login", "", `{"user":"admin","password":"wrong-password-1"}`); code != 401 {
		t.Fatalf("login with a wrong password: %d %s", code, body)
	}
	if code, body := c.raw(t, "GET", "/api/v1/whoami", s.Token, ""); code != 200 || !strings.Contains(body, `"via":"session"`) {
		t.Fatalf("whoami with the session: %d %s", code, body)
	}
	if code, body := c.raw(t, "POST", "/api/v1/logout", s.Token, ""); code != 200 {
		t.Fatalf("logout: %d %s", code, body)
	}
	if code, _ := c.raw(t, "GET", "/api/v1/whoami", s.Token, ""); code != 401 {
		t.Fatalf("whoami after logout: %d, want 401", code)
	}
}
