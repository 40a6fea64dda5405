package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// Callbacks run on role changes with Patroni's arguments (EVENT ROLE
// CLUSTER) and PGGUARD_* variables, nothing of the agent's environment;
// their exit status goes to the history (issue 14 item 5).
func TestCallbacksFollowRoleChanges(t *testing.T) {
	t.Setenv("PGGUARD_PASSPHRASE", "inherited-repository-passphrase")
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o777)
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	events := filepath.Join(dir, "events")
	envFile := filepath.Join(dir, "env")
	for _, f := range []string{events, envFile} {
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(f, 0o666)
	}
	scripts := writeScripts(t, map[string]string{"cb": `echo "$PGGUARD_NODE $1 $2 $3 from=$PGGUARD_PREVIOUS_ROLE" >> ` + events + `
[ "$1" = on_start ] && env >> ` + envFile + `
[ "$1" = on_stop ] && exit 3
exit 0`})
	cb := scripts["cb"]
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		cfg.Callbacks = config.Callbacks{OnStart: cb, OnStop: cb, OnRoleChange: cb, OnPromote: cb, OnDemote: cb, OnFence: cb,
			Timeout: config.Duration(10 * time.Second)}
	}})
	logged := func(want ...string) bool {
		data, _ := os.ReadFile(events)
		for _, w := range want {
			if !strings.Contains(string(data), w) {
				return false
			}
		}
		return true
	}
	leader := c.Leader()
	var starts []string
	for _, n := range c.Layout.Nodes {
		role := "standby"
		if n == leader {
			role = "primary"
		}
		starts = append(starts, n+" on_start "+role+" test from=")
	}
	c.WaitFor("on_start of every node", 30*time.Second, func(status.Report) bool { return logged(starts...) })

	to := others(c.Layout.Nodes, leader)[0]
	ctl(t, c, "switchover", "--to", to, "--yes")
	c.WaitFor("the new primary's callbacks", 30*time.Second, func(status.Report) bool {
		return logged(to+" on_promote primary test from=standby", to+" on_role_change primary test from=standby")
	})
	// The old primary is demoted (stopped, then started as a standby).
	c.WaitFor("the old primary's callbacks", 30*time.Second, func(status.Report) bool {
		return logged(leader+" on_demote standby test from=primary", leader+" on_role_change standby test from=primary")
	})

	// A planned stop of a standby: on_stop, which exits 3, recorded as a
	// failure in the history.
	standby := others(c.Layout.Nodes, to)[0]
	ctl(t, c, "stop", standby)
	c.WaitFor(standby+"'s on_stop recorded as failed", 30*time.Second, func(status.Report) bool {
		for _, e := range history(t, c) {
			if e.Node == standby && e.Action == ha.EventCallback && e.Target == "on_stop" && e.Result == "failed: exited with status 3" {
				return true
			}
		}
		return false
	})
	ctl(t, c, "start", standby)
	okCallbacks := 0
	for _, e := range history(t, c) {
		if e.Action == ha.EventCallback && strings.HasPrefix(e.Result, "ok in ") {
			okCallbacks++
		}
	}
	if okCallbacks < 5 {
		t.Fatalf("%d successful callbacks in the history, want at least 5 (three starts, a promotion, a role change)", okCallbacks)
	}
	env, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PGGUARD_EVENT=on_start", "PGGUARD_CLUSTER=test", "PGGUARD_NODE="} {
		if !strings.Contains(string(env), want) {
			t.Fatalf("callback environment lacks %s:\n%s", want, env)
		}
	}
	for _, secret := range []string{"inherited-repository-passphrase", "PASSPHRASE", "HOME="} {
		if strings.Contains(string(env), secret) {
			t.Fatalf("the agent's environment (%s) reached the callback:\n%s", secret, env)
		}
	}
	data, _ := os.ReadFile(events)
	t.Logf("callbacks run:\n%s", data)
}
