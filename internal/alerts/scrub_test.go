package alerts

import (
	"strings"
	"testing"
)

// No alert may carry a secret: whatever a history reason, a command's
// error or a server's reply quotes is struck before it leaves.
func TestScrubRemovesSecrets(t *testing.T) {
	s := NewScrubber("Sup3r-Secret-Superuser", "repl-pass-9f8e", "abc") // "abc": too short to strike everywhere
	cases := []struct {
		name    string
		text    string
		secrets []string
		keep    []string
	}{
		{"a libpq keyword string", "connect host=10.0.0.2 port=5432 user=postgres password=hunter2hunter2 dbname=postgres: timeout",
			[]string{"hunter2hunter2"}, []string{"host=10.0.0.2", "user=postgres", "dbname=postgres", "timeout"}},
		{"a libpq URI", "dial postgres://postgres:hunter2hunter2@10.0.0.2:5432/postgres failed",
			[]string{"hunter2hunter2", "postgres:hunter2"}, []string{"10.0.0.2:5432/postgres", "failed"}},
		{"an S3 URL with keys", "copy to s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI%2FK7MDENG@bucket/prefix failed",
			[]string{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI"}, []string{"bucket/prefix failed"}},
		{"a bare access key id", "access denied for AKIAIOSFODNN7EXAMPLE on bucket main", []string{"AKIAIOSFODNN7EXAMPLE"}, []string{"access denied", "bucket main"}},
		{"a URL token in the query", "POST https://hooks.example.com/x?token=tok_5f4dcc3b5aa765d61d8327deb882cf99&channel=ops: 403",
			[]string{"tok_5f4dcc3b5aa765d61d8327deb882cf99"}, []string{"hooks.example.com", "channel=ops"}},
		{"environment variables", "env PGGUARD_PASSPHRASE=correct-horse-battery-staple AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCY HOME=/var/lib/postgresql",
			[]string{"correct-horse-battery-staple", "wJalrXUtnFEMIK7MDENGbPxRfiCY"}, []string{"HOME=/var/lib/postgresql"}},
		{"JSON fields", `{"user":"app","password":"hunter2hunter2","api_key":"k-123456789","secret_key": "sk-99999999"}`,
			[]string{"hunter2hunter2", "k-123456789", "sk-99999999"}, []string{`"user":"app"`}},
		{"YAML fields", "access_key: AK-7777777\nsecret_key: sk-88888888\nregion: eu", []string{"AK-7777777", "sk-88888888"}, []string{"region: eu"}},
		{"an HTTP authorisation header", "sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig and got 401",
			[]string{"eyJhbGciOiJIUzI1NiJ9"}, []string{"got 401"}},
		{"a basic credential alone", "proxy answered: Basic dXNlcjpodW50ZXIyaHVudGVyMg== is not accepted", []string{"dXNlcjpodW50ZXIyaHVudGVyMg=="}, []string{"is not accepted"}},
		{"a PEM private key", "bad key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yIGWwIoG5IXJzZ9ypfQwqnZ1Np7oAoGCCqGSM49\n-----END EC PRIVATE KEY-----\nend",
			[]string{"MHcCAQEEIBkg4LVWM9nuwNSk3yIGWwIoG5IXJzZ9"}, []string{"bad key:", "end"}},
		{"a known password wherever it appears", "FATAL: role check failed near 'Sup3r-Secret-Superuser' and repl-pass-9f8e",
			[]string{"Sup3r-Secret-Superuser", "repl-pass-9f8e"}, []string{"FATAL: role check failed"}},
		{"a passphrase in words", "open repository: passphrase: 'correct horse battery staple' is wrong",
			[]string{"correct horse battery staple"}, []string{"open repository", "is wrong"}},
		{"ordinary text is left alone", "failover: n2 is the new primary (n1 lost the leader key); password authentication failed for user \"postgres\"; abc",
			nil, []string{"failover: n2 is the new primary (n1 lost the leader key); password authentication failed for user \"postgres\"; abc"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Text(tc.text)
			for _, secret := range tc.secrets {
				if strings.Contains(got, secret) {
					t.Errorf("%q survived: %q", secret, got)
				}
			}
			for _, k := range tc.keep {
				if !strings.Contains(got, k) {
					t.Errorf("%q was lost: %q", k, got)
				}
			}
			if again := s.Text(got); again != got {
				t.Errorf("scrubbing twice changes the text: %q → %q", got, again)
			}
		})
	}
}

// The notifier scrubs every text it sends, with the secrets it knows.
func TestMessagesAreScrubbedBeforeTheyLeave(t *testing.T) {
	n, sink, _, _ := startNotifier(t, Options{Scrub: NewScrubber("repl-pass-9f8e")}, nil)
	n.Raise(Alert{Kind: KindJobFailed, Severity: Warning, Subject: "nightly", Summary: "job failed: nightly",
		Details: "run: full: exit status 1: connect user=replicator password=repl-pass-9f8e host=10.0.0.2"})
	m := sink.nextAttempt(t)
	if strings.Contains(m.Details, "repl-pass-9f8e") || !strings.Contains(m.Details, "host=10.0.0.2") {
		t.Fatalf("details sent: %q", m.Details)
	}
}
