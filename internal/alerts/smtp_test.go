package alerts_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/alerts"
	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// readMail parses what the sink kept: the headers and the decoded body.
func readMail(t *testing.T, data string) (mail.Header, string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("not an e-mail: %v\n%s", err, data)
	}
	if msg.Header.Get("Content-Transfer-Encoding") != "quoted-printable" || !strings.HasPrefix(msg.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("not plain text: %v", msg.Header)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header, string(body)
}

func TestEmailArrivesAsPlainTextWithEveryField(t *testing.T) {
	sink := testcluster.StartMailSink(t, testcluster.MailSinkOptions{})
	m := alerts.NewSMTP(alerts.SMTPOptions{Host: "127.0.0.1", Port: sink.Port(), From: "pgguard@example.com",
		To: []string{"dba@example.com", "oncall@example.com"}, Timeout: 5 * time.Second})
	msg := message
	msg.Summary = "failover: n2 is the new primary — n1 lost the leader key"
	msg.Details = "promotion: won the election\n.a line that starts with a dot\nresult: ok in 120ms"
	if err := m.Send(context.Background(), msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	mails := sink.Mails()
	if len(mails) != 1 || mails[0].From != "pgguard@example.com" || strings.Join(mails[0].To, ",") != "dba@example.com,oncall@example.com" {
		t.Fatalf("mails %+v", mails)
	}
	h, body := readMail(t, mails[0].Data)
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != "[pgguard main] CRITICAL failover: n2 is the new primary — n1 lost the leader key" {
		t.Errorf("subject %q (%v)", subject, err)
	}
	if h.Get("X-Pgguard-Key") != "failover/main/n2" || h.Get("To") != "dba@example.com, oncall@example.com" {
		t.Errorf("headers %v", h)
	}
	for _, want := range []string{msg.Summary, "cluster:  main", "node:     n2", "kind:     failover", "severity: critical",
		"status:   firing", "time:     2026-11-23T10:00:00Z", "key:      failover/main/n2", "\n.a line that starts with a dot\n"} {
		if !strings.Contains(strings.ReplaceAll(body, "\r\n", "\n"), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

// With STARTTLS and a password: nothing but EHLO and STARTTLS crosses
// the wire before TLS, and the password is read from its file.
func TestEmailOverSTARTTLSWithAPasswordFile(t *testing.T) {
	dir := t.TempDir()
	if err := certs.Init(dir, []string{"mail"}, nil); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certs.CertFile(dir, "mail"), certs.KeyFile(dir, "mail"))
	if err != nil {
		t.Fatal(err)
	}
	sink := testcluster.StartMailSink(t, testcluster.MailSinkOptions{TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Username: "pgguard", Password: "smtp-Pass-4e7d2a"})
	pem, err := os.ReadFile(certs.CAFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	opts := alerts.SMTPOptions{Host: "localhost", Port: sink.Port(), From: "pgguard@example.com", To: []string{"dba@example.com"},
		Username: "pgguard", PasswordFile: writeSecret(t, "smtp-Pass-4e7d2a"), StartTLS: true, TLS: &tls.Config{RootCAs: pool}, Timeout: 5 * time.Second}
	m := alerts.NewSMTP(opts)
	if err := m.Send(context.Background(), message); err != nil {
		t.Fatalf("send: %v", err)
	}
	mails := sink.Mails()
	if len(mails) != 1 || !mails[0].TLS || mails[0].User != "pgguard" {
		t.Fatalf("mails %+v, want one over TLS as pgguard", mails)
	}
	cmds := sink.Commands()
	for _, c := range cmds {
		if !strings.HasPrefix(c, "tls ") && !strings.HasPrefix(c, "EHLO") && c != "STARTTLS" {
			t.Errorf("%q was sent before TLS (commands %q)", c, cmds)
		}
	}
	// A wrong password is refused for good: no retry fixes it.
	opts.PasswordFile = writeSecret(t, "wrong-password")
	err = alerts.NewSMTP(opts).Send(context.Background(), message)
	if err == nil || !alerts.IsPermanent(err) || strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("a wrong password: %v, want a permanent error that does not repeat it", err)
	}
}

func TestEmailRefusalsArePermanentAndOutagesAreNot(t *testing.T) {
	sink := testcluster.StartMailSink(t, testcluster.MailSinkOptions{Reject: []string{"nobody@example.com"}})
	base := alerts.SMTPOptions{Host: "127.0.0.1", Port: sink.Port(), From: "pgguard@example.com", To: []string{"nobody@example.com"}, Timeout: 5 * time.Second}
	if err := alerts.NewSMTP(base).Send(context.Background(), message); err == nil || !alerts.IsPermanent(err) || !strings.Contains(err.Error(), "nobody@example.com") {
		t.Errorf("a refused recipient: %v, want a permanent error naming it", err)
	}
	noTLS := base
	noTLS.To, noTLS.StartTLS = []string{"dba@example.com"}, true
	if err := alerts.NewSMTP(noTLS).Send(context.Background(), message); err == nil || !alerts.IsPermanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("STARTTLS required but not offered: %v", err)
	}
	if len(sink.Mails()) != 0 {
		t.Errorf("refused mail arrived: %+v", sink.Mails())
	}
	down := base
	down.Port = testcluster.FreePort(t)
	if err := alerts.NewSMTP(down).Send(context.Background(), message); err == nil || alerts.IsPermanent(err) {
		t.Errorf("a server that is down: %v, want an error worth retrying", err)
	}
}
