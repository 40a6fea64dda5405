package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/alerts"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/jobs/schedule"
	"github.com/pgguard/pgguard/internal/status"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// alertReceiver is a local webhook receiver: every alert any agent sent.
type alertReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []alerts.Message
	// auth is the Authorization header of each request.
	auth []string
}

func startAlertReceiver(t *testing.T) *alertReceiver {
	r := &alertReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var m alerts.Message
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, "not an alert", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got, r.auth = append(r.got, m), append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *alertReceiver) of(kind alerts.Kind) []alerts.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []alerts.Message
	for _, m := range r.got {
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// mailsAbout lists the mails whose alert key header is key.
func mailsAbout(s *testcluster.MailSink, key string) []testcluster.Mail {
	var out []testcluster.Mail
	for _, m := range s.Mails() {
		if strings.Contains(m.Data, "\nX-Pgguard-Key: "+key+"\n") {
			out = append(out, m)
		}
	}
	return out
}

// Issue 15 item 5: a failover in a three-node cluster, every node with the
// same alerts block, reaches the webhook and the mailbox exactly once,
// from the new primary, and nothing sent carries a secret.
func TestAFailoverRaisesExactlyOneAlert(t *testing.T) {
	const token, smtpPassword = "Bearer tok-7c1e0f9a2b4d6e8f", "smtp-Pass-0b9a8c7d"
	recv := startAlertReceiver(t)
	mail := testcluster.StartMailSink(t, testcluster.MailSinkOptions{Username: "pgguard", Password: smtpPassword})
	// The secret files belong to the database account the agents run
	// as, mode 0600, in a directory it can reach.
	acct := testcluster.Account(t)
	dir, err := os.MkdirTemp("", "pgguard-alerts-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	tokenFile, passwordFile := filepath.Join(dir, "webhook-auth"), filepath.Join(dir, "smtp-password")
	for f, v := range map[string]string{tokenFile: token, passwordFile: smtpPassword} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := acct.ChownTree(f); err != nil {
			t.Fatal(err)
		}
	}
	c := testcluster.StartCluster(t, testcluster.ClusterOptions{Edit: func(cfg *config.Config) {
		cfg.Alerts.Webhook = config.Webhook{URL: recv.srv.URL + "/pgguard", SecretHeaders: map[string]string{"Authorization": tokenFile},
			Timeout: config.Duration(5 * time.Second)}
		cfg.Alerts.SMTP = config.SMTP{Host: "127.0.0.1", Port: mail.Port(), From: "pgguard@example.com", To: []string{"dba@example.com"},
			Username: "pgguard", PasswordFile: passwordFile, StartTLS: false, Timeout: config.Duration(5 * time.Second)}
		cfg.Alerts.CheckInterval = config.Duration(time.Second)
	}})
	old := c.Leader()
	c.KillNode(old)
	r := c.WaitFor("a new leader", 30*time.Second, func(r status.Report) bool { return r.Leader != "" && r.Leader != old })
	newLeader := r.Leader
	key := alerts.Key(alerts.KindFailover, "test", newLeader)
	testcluster.WaitUntil(t, 30*time.Second, "the failover alert at the webhook and in the mailbox", func() (bool, string) {
		hooks, mails := recv.of(alerts.KindFailover), mailsAbout(mail, key)
		return len(hooks) >= 1 && len(mails) >= 1, fmt.Sprintf("webhook %s; %d mails", describeAlerts(hooks), len(mails))
	})
	// Let the cluster settle completely: the old primary back as a
	// standby of the new one (its rewind, its own records), then look
	// again: still exactly one.
	c.StartNode(old)
	c.WaitFor(old+" back as a streaming standby", 90*time.Second, streamingFrom(newLeader, others(c.Layout.Nodes, newLeader)...))

	hooks := recv.of(alerts.KindFailover)
	if len(hooks) != 1 {
		t.Fatalf("%d failover alerts at the webhook, want exactly 1: %s", len(hooks), describeAlerts(hooks))
	}
	m := hooks[0]
	if m.Version != 1 || m.Cluster != "test" || m.Node != newLeader || m.Key != key || m.Severity != alerts.Critical ||
		m.Status != alerts.Firing || m.Time.IsZero() || !strings.Contains(m.Summary, newLeader+" is the new primary") || !strings.Contains(m.Summary, old) {
		t.Errorf("the failover alert: %+v", m)
	}
	if mails := mailsAbout(mail, key); len(mails) != 1 || mails[0].User != "pgguard" {
		t.Errorf("%d failover mails, want exactly 1 sent as pgguard: %+v", len(mails), mails)
	}
	if split := recv.of(alerts.KindSplit); len(split) > 0 {
		t.Errorf("a failover raised a split alert: %s", describeAlerts(split))
	}
	// A cluster-wide condition (a backup job whose schedule fired twice
	// without a successful run) is judged by every agent from the store
	// but sent by the lease holder alone, once, then resolved once.
	overdueBackupIsSentOnceByTheLeaseHolder(t, c, recv, newLeader)

	recv.mu.Lock()
	sent, auth := append([]alerts.Message(nil), recv.got...), append([]string(nil), recv.auth...)
	recv.mu.Unlock()
	for _, a := range auth {
		if a != token {
			t.Errorf("a webhook request came with Authorization %q, want the token from its file", a)
		}
	}
	// Nothing sent or logged carries a secret.
	body, _ := json.Marshal(sent)
	texts := []string{string(body)}
	for _, m := range mail.Mails() {
		texts = append(texts, m.Data)
	}
	for _, n := range c.Layout.Nodes {
		logs, _ := os.ReadFile(filepath.Join(c.Layout.NodeDir(n), "agent.log"))
		texts = append(texts, string(logs))
	}
	for _, text := range texts {
		for _, secret := range []string{"tok-7c1e0f9a2b4d6e8f", smtpPassword} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret (%s…) appears in what was sent or logged", secret[:6])
			}
		}
	}
	t.Logf("alerts received: %s", describeAlerts(sent))
}

func overdueBackupIsSentOnceByTheLeaseHolder(t *testing.T, c *testcluster.Cluster, recv *alertReceiver, leader string) {
	t.Helper()
	store, err := c.Layout.OpenStore()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	created := time.Now().Add(-72 * time.Hour)
	job := jobs.Job{ID: "nightly", Kind: jobs.KindFull, Enabled: true, Created: created, Updated: created,
		Schedule: schedule.Schedule{Kind: schedule.Daily, TimeOfDay: schedule.Clock(1, 0), Start: created}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := store.PutJob(ctx, job, true); err != nil {
		t.Fatal(err)
	}
	byStatus := func(status string) []alerts.Message {
		var out []alerts.Message
		for _, m := range recv.of(alerts.KindBackupAge) {
			if m.Status == status {
				out = append(out, m)
			}
		}
		return out
	}
	testcluster.WaitUntil(t, 30*time.Second, "the backup-age alert", func() (bool, string) {
		got := byStatus(alerts.Firing)
		return len(got) > 0, describeAlerts(got)
	})
	// Not a wait for a state: three checks of every agent (check_interval
	// 1s) in which a member that is not the sender could wrongly send.
	time.Sleep(3 * time.Second)
	if _, err := store.DeleteJob(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	testcluster.WaitUntil(t, 30*time.Second, "the backup-age alert resolved", func() (bool, string) {
		got := byStatus(alerts.Resolved)
		return len(got) > 0, describeAlerts(got)
	})
	all := recv.of(alerts.KindBackupAge)
	if len(all) != 2 || all[0].Status != alerts.Firing || all[1].Status != alerts.Resolved {
		t.Fatalf("backup-age alerts %s, want one firing then one resolved", describeAlerts(all))
	}
	for _, m := range all {
		if m.Node != leader || m.Key != "backup-age/test/nightly" || m.Severity != alerts.Warning {
			t.Errorf("backup-age alert %+v, want it from the lease holder %s", m, leader)
		}
	}
}

func describeAlerts(ms []alerts.Message) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, m.Key+" from "+m.Node+" ("+m.Status+"): "+m.Summary)
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
