package config

// This file holds the alerts block: where the agent sends alerts (a
// webhook, e-mail) without Prometheus, and the limits it judges backups
// by. Secrets (the SMTP password, an authorisation header, a webhook URL
// that is itself a token) come only from files that group and others
// cannot read; node.yaml never holds them.

import (
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Alerts configures the alerts this agent sends (internal/alerts).
// Configure the same block on every node: events are sent by the node
// that records them, cluster-wide conditions by the leader-lease holder.
type Alerts struct {
	Webhook Webhook `yaml:"webhook"`
	SMTP    SMTP    `yaml:"smtp"`
	// RepeatInterval is how long the same alert (same key) is not sent
	// again, unless it was resolved and came back or grew more severe.
	RepeatInterval Duration `yaml:"repeat_interval"`
	// RetryFor is how long a failed send is retried, with backoff,
	// before it is given up (logged and counted).
	RetryFor Duration `yaml:"retry_for"`
	// CheckInterval is how often the lease holder checks the
	// cluster-wide conditions (split, backup age).
	CheckInterval Duration `yaml:"check_interval"`
	// BackupMaxAge bounds the age of the newest successful backup of a
	// scheduled job, by kind (full, incr, logical). A kind without an
	// entry is overdue once its job's schedule fired twice since its
	// newest successful run.
	BackupMaxAge map[string]Duration `yaml:"backup_max_age"`
}

// Webhook posts each alert as a JSON document (docs/ALERTS.md).
type Webhook struct {
	URL string `yaml:"url"`
	// URLFile holds the URL instead, for receivers whose URL is itself
	// the credential (a chat service's incoming webhook).
	URLFile string `yaml:"url_file"`
	// Headers are sent as they are; a header that carries a credential
	// belongs in SecretHeaders.
	Headers map[string]string `yaml:"headers"`
	// SecretHeaders maps a header name to a file holding its value
	// (Authorization: /etc/pgguard/alert-token).
	SecretHeaders map[string]string `yaml:"secret_headers"`
	// CAFile verifies an https receiver with a private CA.
	CAFile  string   `yaml:"ca_file"`
	Timeout Duration `yaml:"timeout"`
}

// SMTP sends each alert as a plain-text e-mail.
type SMTP struct {
	Host     string   `yaml:"host"`
	Port     int      `yaml:"port"`
	From     string   `yaml:"from"`
	To       []string `yaml:"to"`
	Username string   `yaml:"username"`
	// PasswordFile holds the password (mode 0600, the agent's account).
	PasswordFile string `yaml:"password_file"`
	// Password is never accepted: it is here only to say so by name.
	Password string `yaml:"password,omitempty"`
	// StartTLS upgrades the connection before anything is sent (default
	// true); off only for a relay on this host.
	StartTLS bool     `yaml:"starttls"`
	CAFile   string   `yaml:"ca_file"`
	Timeout  Duration `yaml:"timeout"`
}

// DefaultAlerts are the alerts settings node.yaml starts from.
func DefaultAlerts() Alerts {
	return Alerts{
		Webhook:        Webhook{Timeout: Duration(10 * time.Second)},
		SMTP:           SMTP{Port: 587, StartTLS: true, Timeout: Duration(20 * time.Second)},
		RepeatInterval: Duration(time.Hour),
		RetryFor:       Duration(10 * time.Minute),
		CheckInterval:  Duration(10 * time.Second),
	}
}

// Enabled reports whether any receiver is configured.
func (a Alerts) Enabled() bool { return a.Webhook.Enabled() || a.SMTP.Enabled() }

// Enabled reports whether the webhook is configured.
func (w Webhook) Enabled() bool { return w.URL != "" || w.URLFile != "" }

// Enabled reports whether e-mail is configured.
func (s SMTP) Enabled() bool { return s.Host != "" }

// BackupKinds are the job kinds whose age alerts.backup_max_age bounds.
var BackupKinds = []string{"full", "incr", "logical"}

// secretHeader matches header names that carry credentials: they are
// refused in alerts.webhook.headers.
func secretHeader(name string) bool {
	n := strings.ToLower(name)
	if n == "cookie" || strings.HasSuffix(n, "authorization") {
		return true
	}
	for _, w := range []string{"auth", "token", "secret", "password", "passwd", "key", "signature", "session"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func (a Alerts) validate(bad func(field, format string, args ...any)) {
	for field, d := range map[string]Duration{"alerts.repeat_interval": a.RepeatInterval, "alerts.retry_for": a.RetryFor,
		"alerts.webhook.timeout": a.Webhook.Timeout, "alerts.smtp.timeout": a.SMTP.Timeout} {
		if d <= 0 {
			bad(field, "must be positive")
		}
	}
	if a.CheckInterval < Duration(time.Second) {
		bad("alerts.check_interval", "%s: at least 1s", a.CheckInterval)
	}
	for kind, d := range a.BackupMaxAge {
		field := "alerts.backup_max_age." + kind
		switch {
		case !slices.Contains(BackupKinds, kind):
			bad(field, "%q is not a backup kind: use %s", kind, strings.Join(BackupKinds, ", "))
		case d <= 0:
			bad(field, "must be positive (e.g. 26h)")
		}
	}
	a.Webhook.validate(bad)
	a.SMTP.validate(bad)
}

func (w Webhook) validate(bad func(field, format string, args ...any)) {
	if !w.Enabled() {
		if len(w.Headers) > 0 || len(w.SecretHeaders) > 0 || w.CAFile != "" {
			bad("alerts.webhook.url", "missing: headers are set but no url or url_file")
		}
		return
	}
	switch {
	case w.URL != "" && w.URLFile != "":
		bad("alerts.webhook.url_file", "give url or url_file, not both")
	case w.URL != "":
		if err := checkWebhookURL(w.URL); err != nil {
			bad("alerts.webhook.url", "%v", err)
		} else if u, _ := url.Parse(w.URL); len(w.SecretHeaders) > 0 && u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			bad("alerts.webhook.url", "%s is plaintext: secret_headers would cross the network in clear; use https://", redactURL(w.URL))
		}
	default:
		checkSecretFile("alerts.webhook.url_file", w.URLFile, bad)
	}
	for _, name := range sortedKeys(w.Headers) {
		field := "alerts.webhook.headers." + name
		switch {
		case !validHeaderName(name):
			bad(field, "%q is not an HTTP header name", name)
		case secretHeader(name):
			bad(field, "looks like a credential: put its value in a file only the agent's account can read and name it under alerts.webhook.secret_headers")
		case strings.ContainsAny(w.Headers[name], "\r\n"):
			bad(field, "a header value is one line")
		}
	}
	for _, name := range sortedKeys(w.SecretHeaders) {
		field := "alerts.webhook.secret_headers." + name
		if !validHeaderName(name) {
			bad(field, "%q is not an HTTP header name", name)
			continue
		}
		checkSecretFile(field, w.SecretHeaders[name], bad)
	}
	if w.CAFile != "" {
		if _, err := os.Stat(w.CAFile); err != nil {
			bad("alerts.webhook.ca_file", "%v", err)
		}
	}
}

func (s SMTP) validate(bad func(field, format string, args ...any)) {
	if s.Password != "" {
		bad("alerts.smtp.password", "never inline: write it to a file only the agent's account can read (chmod 600) and name it in alerts.smtp.password_file")
	}
	if !s.Enabled() {
		if s.From != "" || len(s.To) > 0 || s.Username != "" || s.PasswordFile != "" {
			bad("alerts.smtp.host", "missing: name the mail server (smtp.example.com)")
		}
		return
	}
	if strings.ContainsAny(s.Host, " /:\r\n") || strings.HasPrefix(s.Host, "-") {
		bad("alerts.smtp.host", "%q: a host name or IP address, without a port (alerts.smtp.port)", s.Host)
	}
	if s.Port <= 0 || s.Port > 65535 {
		bad("alerts.smtp.port", "%d is not a TCP port (587 for submission with STARTTLS)", s.Port)
	}
	if _, err := mail.ParseAddress(s.From); err != nil || strings.ContainsAny(s.From, "\r\n") {
		bad("alerts.smtp.from", "%q: an e-mail address (pgguard@example.com)", s.From)
	}
	if len(s.To) == 0 {
		bad("alerts.smtp.to", "missing: list who receives the alerts")
	}
	for i, to := range s.To {
		if _, err := mail.ParseAddress(to); err != nil || strings.ContainsAny(to, "\r\n") {
			bad(fmt.Sprintf("alerts.smtp.to[%d]", i), "%q: an e-mail address", to)
		}
	}
	switch {
	case s.Username != "" && s.PasswordFile == "":
		bad("alerts.smtp.password_file", "missing: alerts.smtp.username is set; name the file that holds the password")
	case s.Username == "" && s.PasswordFile != "":
		bad("alerts.smtp.username", "missing: alerts.smtp.password_file is set")
	case s.PasswordFile != "":
		checkSecretFile("alerts.smtp.password_file", s.PasswordFile, bad)
		if !s.StartTLS && !loopbackHost(s.Host) {
			bad("alerts.smtp.starttls", "false would send the password to %s in clear: set starttls: true", s.Host)
		}
	}
	if s.CAFile != "" {
		if _, err := os.Stat(s.CAFile); err != nil {
			bad("alerts.smtp.ca_file", "%v", err)
		}
	}
}

// checkSecretFile refuses a secret's file that is not an absolute path to
// a regular file that only its owner can read (the agent checks at start
// that its account can).
func checkSecretFile(field, path string, bad func(field, format string, args ...any)) {
	if !filepath.IsAbs(path) {
		bad(field, "%q is not an absolute path", path)
		return
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		bad(field, "%v", err)
	case !st.Mode().IsRegular():
		bad(field, "%s is not a regular file", path)
	case st.Mode().Perm()&0o077 != 0:
		bad(field, "%s is readable or writable by group or others (mode %s): chmod 600 it (owned by the agent's account)", path, st.Mode().Perm())
	}
}

// checkWebhookURL accepts http(s)://host[:port]/path without credentials
// in it.
func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", redactURL(raw))
	}
	if u.User != nil {
		return fmt.Errorf("%s carries credentials: name a header under alerts.webhook.secret_headers, or keep the whole URL in alerts.webhook.url_file", redactURL(raw))
	}
	for name := range u.Query() {
		if secretHeader(name) {
			return fmt.Errorf("%s carries a credential in its query (%s): keep the whole URL in alerts.webhook.url_file", redactURL(raw), name)
		}
	}
	return nil
}

// redactURL is a URL as it may be logged: its scheme and host only (the
// credentials, the path and the query may be secrets: some receivers'
// URLs are themselves the token).
func redactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "(a URL)"
	}
	return u.Scheme + "://" + u.Host
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validHeaderName(name string) bool {
	if name == "" || textproto.CanonicalMIMEHeaderKey(name) == "" {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
