package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/pgguard/pgguard/internal/alerts"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
	"github.com/pgguard/pgguard/internal/jobs"
	"github.com/pgguard/pgguard/internal/reposettings"
)

// alerter connects the agent to its alerts.Notifier: the history events
// the agent records (through onEvent, without ever waiting), and, while
// this node is the one that sends them (alerts.Sender: the leader-lease
// holder), the cluster-wide conditions read from the last loop's view and
// the store's jobs.
type alerter struct {
	a      *Agent
	n      *alerts.Notifier
	events chan dcs.Event
	// dropped counts events the channel had no room for.
	dropped atomic.Uint64
	// lost is the leader whose loss this node recorded last, and when:
	// the failover alert names it.
	lost   string
	lostAt time.Time
}

// startAlerts starts the notifier when node.yaml configures a receiver.
// A secret file the agent's account cannot read stops the agent here,
// naming the field; after this, nothing about alerts is ever fatal.
func (a *Agent) startAlerts(ctx context.Context) error {
	cfg := a.cfg.Alerts
	if !cfg.Enabled() {
		return nil
	}
	sinks, secrets, err := alertSinks(cfg, a.cfg.Name)
	if err != nil {
		return err
	}
	n := alerts.New(alerts.Options{
		Cluster: a.cfg.Cluster, Node: a.cfg.Name, Sinks: sinks,
		RepeatInterval: cfg.RepeatInterval.D(), RetryFor: cfg.RetryFor.D(),
		Scrub: alerts.NewScrubber(append(secrets, a.knownSecrets()...)...),
		Log:   a.log.With("component", "alerts"),
	})
	al := &alerter{a: a, n: n, events: make(chan dcs.Event, 256)}
	a.onEvent = append(a.onEvent, al.offer)
	go n.Run(ctx)
	go al.translate(ctx)
	go al.watch(ctx)
	names := make([]string, len(sinks))
	for i, s := range sinks {
		names[i] = s.Name()
	}
	a.log.Info("alerts on", "receivers", names)
	return nil
}

// alertSinks builds the receivers of node.yaml and reads their secret
// files once, as the agent's account, to fail now rather than at the
// first alert.
func alertSinks(cfg config.Alerts, node string) ([]alerts.Sink, []string, error) {
	var sinks []alerts.Sink
	var secrets []string
	if w := cfg.Webhook; w.Enabled() {
		tlsCfg, err := caConfig(w.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("alerts.webhook.ca_file: %w", err)
		}
		hook := alerts.NewWebhook(alerts.WebhookOptions{URL: w.URL, URLFile: w.URLFile, Headers: w.Headers,
			SecretHeaders: w.SecretHeaders, TLS: tlsCfg, Timeout: w.Timeout.D()})
		s, err := hook.Secrets()
		if err != nil {
			return nil, nil, fmt.Errorf("alerts.webhook: %w: the agent's account must be able to read it", err)
		}
		sinks, secrets = append(sinks, hook), append(secrets, s...)
	}
	if m := cfg.SMTP; m.Enabled() {
		tlsCfg, err := caConfig(m.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("alerts.smtp.ca_file: %w", err)
		}
		mail := alerts.NewSMTP(alerts.SMTPOptions{Host: m.Host, Port: m.Port, From: m.From, To: m.To,
			Username: m.Username, PasswordFile: m.PasswordFile, StartTLS: m.StartTLS, TLS: tlsCfg,
			Timeout: m.Timeout.D(), Hello: hostname(node)})
		s, err := mail.Secrets()
		if err != nil {
			return nil, nil, fmt.Errorf("alerts.smtp.password_file: %w: the agent's account must be able to read it", err)
		}
		sinks, secrets = append(sinks, mail), append(secrets, s...)
	}
	return sinks, secrets, nil
}

func caConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func hostname(fallback string) string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return fallback
}

// knownSecrets are this node's secrets that a history reason or a
// command's error could quote: they are struck from every alert.
func (a *Agent) knownSecrets() []string {
	c := a.cfg
	out := []string{c.Postgres.Superuser.Password, c.Postgres.Replication.Password,
		c.Repository.S3.SecretKey, c.Repository.S3.AccessKey, c.Repository.CopyTo.S3.SecretKey, c.Repository.CopyTo.S3.AccessKey}
	for _, env := range []string{reposettings.PassphraseEnv, reposettings.ToPassphraseEnv, "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		out = append(out, os.Getenv(env))
	}
	return out
}

// offer is the onEvent hook: it hands the event over without waiting (a
// full channel drops it; the loop must never wait on an alert).
func (al *alerter) offer(e dcs.Event) {
	select {
	case al.events <- e:
	default:
		// Logged at the first drop and every thousandth: a flood of
		// events must not become a flood of log lines in the loop.
		if n := al.dropped.Add(1); n%1000 == 1 {
			al.a.log.Warn("alerts: events dropped, too many waiting", "action", e.Action, "dropped", n)
		}
	}
}

// translate turns recorded events into alerts, looking up the kind of a
// failed job in the store (here, never in the loop).
func (al *alerter) translate(ctx context.Context) {
	for {
		var e dcs.Event
		select {
		case <-ctx.Done():
			return
		case e = <-al.events:
		}
		ev := alerts.Event{Node: e.Node, Action: e.Action, Target: e.Target, Reason: e.Reason, Result: e.Result, Time: e.Time}
		switch e.Action {
		case ha.EventLeaderLost:
			al.lost, al.lostAt = e.Target, e.Time
			continue
		case ha.Promote:
			if e.Time.Sub(al.lostAt) < 2*time.Minute {
				ev.LeaderLost = al.lost
			}
		case ha.EventJobFailed:
			ev.JobKind = al.jobKind(ctx, e.Target)
		}
		if alert, ok := alerts.FromEvent(ev); ok {
			al.n.Raise(alert)
		}
	}
}

func (al *alerter) jobKind(ctx context.Context, id string) string {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	list, err := al.a.store.Jobs(sctx)
	if err != nil {
		return ""
	}
	for _, j := range list {
		if j.ID == id {
			return string(j.Kind)
		}
	}
	return ""
}

// watch checks the cluster-wide conditions every alerts.check_interval
// from the last loop's view of the store, and the jobs and their runs.
// Only the sender judges them; on the others it only forgets.
func (al *alerter) watch(ctx context.Context) {
	a := al.a
	ttl := a.cfg.HA.TTL.D()
	clock := jobsClock(a.cfg.Jobs.ClockSpeed, a.cfg.Jobs.ClockEpoch)
	maxAge := map[jobs.Kind]time.Duration{}
	for k, d := range a.cfg.Alerts.BackupMaxAge {
		maxAge[jobs.Kind(k)] = d.D()
	}
	ticks(ctx, a.cfg.Alerts.CheckInterval.D(), func() bool {
		v := a.api.last.Load()
		if v == nil || !v.obs.StoreOK || time.Since(v.at) > 2*ttl {
			return true // no fresh view of the store: judge nothing
		}
		c := v.obs.Cluster
		if alerts.Sender(c, v.obs.Now, ttl) != a.cfg.Name {
			al.n.Observe(v.obs.Now, nil, nil, false)
			return true
		}
		view := alerts.View{Cluster: c, Now: v.obs.Now, TTL: ttl, MaxAge: maxAge}
		kinds := []alerts.Kind{alerts.KindSplit}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		list, err := a.store.Jobs(sctx)
		var runs map[string][]jobs.Run
		if err == nil {
			runs, err = a.store.Runs(sctx)
		}
		cancel()
		if err == nil {
			view.Jobs, view.Runs, view.JobsNow = list, runs, clock()
			kinds = append(kinds, alerts.KindBackupAge)
		}
		al.n.Observe(v.obs.Now, kinds, alerts.Conditions(view), true)
		return true
	})
}
