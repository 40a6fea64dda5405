package testcluster

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// MailSink is a small SMTP server on loopback for alert tests: it speaks
// enough of RFC 5321 for a client (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT,
// DATA, RSET, NOOP, QUIT), keeps every message, and refuses what its
// options say.
type MailSink struct {
	o  MailSinkOptions
	ln net.Listener

	mu       sync.Mutex
	mails    []Mail
	commands []string
}

// MailSinkOptions shape a MailSink.
type MailSinkOptions struct {
	// TLS offers STARTTLS with this configuration (nil: not offered).
	TLS *tls.Config
	// Username and Password, when set, are the only credentials AUTH
	// accepts; mail is then refused without them.
	Username, Password string
	// Reject lists recipients refused with 550.
	Reject []string
}

// Mail is one message the sink accepted.
type Mail struct {
	From string
	To   []string
	// Data is the message as sent, with LF line ends.
	Data string
	// TLS: it arrived over STARTTLS; User: the account it authenticated as.
	TLS  bool
	User string
}

// StartMailSink listens on a free loopback port until the test ends.
func StartMailSink(t testing.TB, o MailSinkOptions) *MailSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mail sink: %v", err)
	}
	s := &MailSink{o: o, ln: ln}
	go s.serve()
	t.Cleanup(func() { ln.Close() })
	return s
}

// Port is the port the sink listens on (host 127.0.0.1).
func (s *MailSink) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Mails returns the messages accepted so far.
func (s *MailSink) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Commands returns every command received so far, in order, each
// prefixed "tls " when it came over TLS (AUTH's argument left out).
func (s *MailSink) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

func (s *MailSink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

func (s *MailSink) session(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	tp := textproto.NewConn(conn)
	reply := func(format string, args ...any) { _ = tp.PrintfLine(format, args...) }
	reply("220 mailsink ESMTP")
	var cur Mail
	secure, user := false, ""
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		logged := line
		if verb == "AUTH" {
			logged = "AUTH " + strings.Fields(arg + " x")[0]
		}
		if secure {
			logged = "tls " + logged
		}
		s.mu.Lock()
		s.commands = append(s.commands, logged)
		s.mu.Unlock()
		switch verb {
		case "EHLO", "HELO":
			lines := []string{"mailsink", "8BITMIME"}
			if s.o.TLS != nil && !secure {
				lines = append(lines, "STARTTLS")
			}
			if s.o.Username != "" {
				lines = append(lines, "AUTH PLAIN")
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				reply("250%s%s", sep, l)
			}
		case "STARTTLS":
			if s.o.TLS == nil || secure {
				reply("502 not offered")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(conn, s.o.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, secure = tc, true
			tp = textproto.NewConn(conn)
			cur = Mail{}
		case "AUTH":
			mech, b64, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(b64)
			parts := bytes.Split(raw, []byte{0})
			if !strings.EqualFold(mech, "PLAIN") || err != nil || len(parts) != 3 ||
				string(parts[1]) != s.o.Username || string(parts[2]) != s.o.Password {
				reply("535 5.7.8 authentication failed")
				continue
			}
			user = s.o.Username
			reply("235 2.7.0 authenticated")
		case "MAIL":
			if s.o.Username != "" && user == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			cur = Mail{From: addrOf(arg), TLS: secure, User: user}
			reply("250 ok")
		case "RCPT":
			to := addrOf(arg)
			refused := false
			for _, r := range s.o.Reject {
				refused = refused || r == to
			}
			if refused {
				reply("550 5.1.1 no such user")
				continue
			}
			cur.To = append(cur.To, to)
			reply("250 ok")
		case "DATA":
			if cur.From == "" || len(cur.To) == 0 {
				reply("503 need MAIL and RCPT first")
				continue
			}
			reply("354 end with .")
			data, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			cur.Data = string(data)
			s.mu.Lock()
			s.mails = append(s.mails, cur)
			s.mu.Unlock()
			cur = Mail{}
			reply("250 queued")
		case "RSET":
			cur = Mail{}
			reply("250 ok")
		case "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("500 unknown command")
		}
	}
}

// addrOf takes the address out of "FROM:<a@b>" or "TO:<a@b> SIZE=1".
func addrOf(arg string) string {
	_, v, _ := strings.Cut(arg, ":")
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '>'); strings.HasPrefix(v, "<") && i > 0 {
		return v[1:i]
	}
	return strings.Fields(v + " ")[0]
}
