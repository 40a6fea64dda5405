package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func secretFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte("s3cr3t-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAlertsBlockParsesWithDefaults(t *testing.T) {
	pw := secretFile(t, 0o600)
	token := secretFile(t, 0o400)
	cfg, err := Parse([]byte(withBin(good) + `alerts:
  webhook:
    url: https://alerts.example.com/pgguard
    headers: {X-Team: dba}
    secret_headers: {Authorization: ` + token + `}
  smtp:
    host: smtp.example.com
    from: pgguard@example.com
    to: [dba@example.com, "On Call <oncall@example.com>"]
    username: pgguard
    password_file: ` + pw + `
  backup_max_age: {full: 30h}
`))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	a := cfg.Alerts
	if !a.Enabled() || !a.Webhook.Enabled() || !a.SMTP.Enabled() {
		t.Fatalf("alerts not enabled: %+v", a)
	}
	if a.SMTP.Port != 587 || !a.SMTP.StartTLS || a.RepeatInterval.D() != time.Hour || a.CheckInterval.D() != 10*time.Second {
		t.Errorf("defaults not filled: port %d starttls %v repeat %s check %s", a.SMTP.Port, a.SMTP.StartTLS, a.RepeatInterval, a.CheckInterval)
	}
	if a.BackupMaxAge["full"].D() != 30*time.Hour {
		t.Errorf("backup_max_age.full = %s", a.BackupMaxAge["full"])
	}
	none, err := Parse([]byte(withBin(good)))
	if err != nil || none.Alerts.Enabled() {
		t.Fatalf("a node.yaml without alerts: enabled %v, err %v", none.Alerts.Enabled(), err)
	}
}

func TestAlertsBlockRejectsSecretsAndMistakesNamingTheField(t *testing.T) {
	pw := secretFile(t, 0o600)
	lax := secretFile(t, 0o644)
	smtp := func(extra string) string {
		return "alerts:\n  smtp:\n    host: smtp.example.com\n    from: pgguard@example.com\n    to: [dba@example.com]\n" + extra
	}
	cases := []struct {
		name, block, mention string
	}{
		{"an inline SMTP password is refused", smtp("    username: u\n    password: hunter2hunter2\n"), "alerts.smtp.password: never inline"},
		{"a password file others can read is refused", smtp("    username: u\n    password_file: " + lax + "\n"), "alerts.smtp.password_file: " + lax + " is readable or writable by group or others"},
		{"a relative password file is refused", smtp("    username: u\n    password_file: smtp-pass\n"), "alerts.smtp.password_file: \"smtp-pass\" is not an absolute path"},
		{"a username without a password file", smtp("    username: u\n"), "alerts.smtp.password_file: missing"},
		{"a password sent in clear to another host", smtp("    username: u\n    password_file: " + pw + "\n    starttls: false\n"), "alerts.smtp.starttls: false would send the password"},
		{"no recipient", "alerts:\n  smtp:\n    host: smtp.example.com\n    from: pgguard@example.com\n", "alerts.smtp.to: missing"},
		{"a bad recipient", "alerts:\n  smtp:\n    host: smtp.example.com\n    from: a@b.c\n    to: [not-an-address]\n", "alerts.smtp.to[0]"},
		{"a port in the host", "alerts:\n  smtp:\n    host: smtp.example.com:25\n    from: a@b.c\n    to: [d@e.f]\n", "alerts.smtp.host"},
		{"a webhook URL with a password is refused without repeating it", "alerts:\n  webhook:\n    url: https://bot:hunter2hunter2@alerts.example.com/x\n", "alerts.webhook.url: https://alerts.example.com carries credentials"},
		{"a webhook URL with a token in its query", "alerts:\n  webhook:\n    url: https://alerts.example.com/x?token=hunter2hunter2\n", "carries a credential in its query (token)"},
		{"a credential in plain headers", "alerts:\n  webhook:\n    url: https://alerts.example.com/x\n    headers: {Authorization: Bearer hunter2hunter2}\n", "alerts.webhook.headers.Authorization: looks like a credential"},
		{"a secret header file others can read", "alerts:\n  webhook:\n    url: https://alerts.example.com/x\n    secret_headers: {Authorization: " + lax + "}\n", "alerts.webhook.secret_headers.Authorization"},
		{"secret headers over plaintext to another host", "alerts:\n  webhook:\n    url: http://alerts.example.com/x\n    secret_headers: {Authorization: " + pw + "}\n", "alerts.webhook.url: http://alerts.example.com is plaintext"},
		{"not a URL", "alerts:\n  webhook:\n    url: alerts.example.com\n", "alerts.webhook.url"},
		{"url and url_file", "alerts:\n  webhook:\n    url: https://a.example.com/\n    url_file: " + pw + "\n", "alerts.webhook.url_file: give url or url_file, not both"},
		{"a backup max age of an unknown kind", "alerts:\n  backup_max_age: {prune: 1h}\n", "alerts.backup_max_age.prune"},
		{"a check interval below a second", "alerts:\n  check_interval: 10ms\n", "alerts.check_interval"},
		{"a zero repeat interval", "alerts:\n  repeat_interval: 0s\n", "alerts.repeat_interval: must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withBin(good) + tc.block))
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %v, want one naming %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestAPlaintextRelayOnThisHostMayTakeAPassword(t *testing.T) {
	pw := secretFile(t, 0o600)
	_, err := Parse([]byte(withBin(good) + "alerts:\n  smtp:\n    host: 127.0.0.1\n    port: 25\n    from: a@b.c\n    to: [d@e.f]\n    username: u\n    password_file: " + pw + "\n    starttls: false\n"))
	if err != nil {
		t.Fatalf("a relay on loopback without STARTTLS: %v", err)
	}
}
