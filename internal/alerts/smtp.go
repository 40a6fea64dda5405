package alerts

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// SMTPOptions configure the e-mail receiver.
type SMTPOptions struct {
	Host string
	Port int
	From string
	To   []string
	// Username and PasswordFile authenticate (PLAIN, only over TLS or
	// to this host); the file is read at every send.
	Username, PasswordFile string
	// StartTLS upgrades the connection before anything else is said;
	// TLS verifies the server (nil: the system's roots).
	StartTLS bool
	TLS      *tls.Config
	Timeout  time.Duration
	// Hello is the name this client gives in EHLO (default localhost).
	Hello string
}

// SMTP sends each message as a plain-text e-mail, one connection each.
type SMTP struct {
	o SMTPOptions
}

// NewSMTP prepares the receiver.
func NewSMTP(o SMTPOptions) *SMTP {
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	if o.Hello == "" {
		o.Hello = "localhost"
	}
	return &SMTP{o: o}
}

// Name is "smtp HOST:PORT".
func (s *SMTP) Name() string { return "smtp " + s.addr() }

func (s *SMTP) addr() string { return net.JoinHostPort(s.o.Host, strconv.Itoa(s.o.Port)) }

// Secrets reads the password file and returns the password (to scrub it
// from every text), or why it cannot be read.
func (s *SMTP) Secrets() ([]string, error) {
	if s.o.PasswordFile == "" {
		return nil, nil
	}
	p, err := readSecret(s.o.PasswordFile)
	if err != nil {
		return nil, err
	}
	return []string{p}, nil
}

// Send delivers m once to every recipient. A 5xx reply (a rejected
// sender, recipient or password) is permanent.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	deadline := time.Now().Add(s.o.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", s.addr())
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	// The context ends the conversation too, not only the deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if err := s.converse(conn, m); err != nil {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return Permanent(fmt.Errorf("%s: %w", s.Name(), err))
		}
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	return nil
}

func (s *SMTP) converse(conn net.Conn, m Message) error {
	c, err := smtp.NewClient(conn, s.o.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(s.o.Hello); err != nil {
		return err
	}
	if s.o.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return Permanent(errors.New("the server offers no STARTTLS (alerts.smtp.starttls is on)"))
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.o.TLS != nil {
			cfg = s.o.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = s.o.Host
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if s.o.Username != "" {
		password, err := readSecret(s.o.PasswordFile)
		if err != nil {
			return err
		}
		// PlainAuth refuses to send the password unencrypted to any
		// host but this one.
		if err := c.Auth(smtp.PlainAuth("", s.o.Username, password, s.o.Host)); err != nil {
			return fmt.Errorf("authenticate as %s: %w", s.o.Username, err)
		}
	}
	if err := c.Mail(s.o.From); err != nil {
		return fmt.Errorf("sender %s: %w", s.o.From, err)
	}
	for _, to := range s.o.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("recipient %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(Email(m, s.o.From, s.o.To)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// Email is m as a plain-text message from from to to: a subject that
// says the cluster, severity and summary, and a body with every field of
// the webhook's JSON, one per line.
func Email(m Message, from string, to []string) []byte {
	var b bytes.Buffer
	header := func(k, v string) {
		// No header may be split: an alert's text cannot add one.
		fmt.Fprintf(&b, "%s: %s\r\n", k, strings.NewReplacer("\r", " ", "\n", " ").Replace(v))
	}
	subject := fmt.Sprintf("[pgguard %s] %s %s", m.Cluster, strings.ToUpper(string(m.Severity)), m.Summary)
	if m.Status == Resolved {
		subject = fmt.Sprintf("[pgguard %s] RESOLVED %s", m.Cluster, m.Summary)
	}
	header("From", from)
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", subject))
	header("Date", m.Time.Format(time.RFC1123Z))
	header("Message-ID", fmt.Sprintf("<%d.%s@pgguard>", m.Time.UnixNano(), strings.ReplaceAll(m.Key, "/", ".")))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("X-Pgguard-Key", m.Key)
	b.WriteString("\r\n")
	var body strings.Builder
	body.WriteString(m.Summary + "\n\n")
	for _, f := range [][2]string{{"cluster", m.Cluster}, {"node", m.Node}, {"kind", string(m.Kind)}, {"severity", string(m.Severity)},
		{"status", m.Status}, {"time", m.Time.Format(time.RFC3339)}, {"key", m.Key}} {
		fmt.Fprintf(&body, "%-9s %s\n", f[0]+":", f[1])
	}
	if m.Details != "" {
		body.WriteString("\n" + m.Details + "\n")
	}
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(body.String(), "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}
