package reposettings

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
)

func TestRetryNoticeSaysItAtMostEveryFiveSeconds(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	notice := retryNotice(&out, "s3://backups", func() time.Time { return now })
	notice("save", "packs/ab", errors.New("connection refused"), 1234*time.Millisecond)
	now = now.Add(4 * time.Second)
	notice("save", "packs/cd", errors.New("connection refused"), 2*time.Second)
	now = now.Add(time.Second)
	notice("load", "index/1", errors.New("timeout"), 4*time.Second)
	want := "repository s3://backups unreachable (save packs/ab: connection refused), retrying in 1.2s\n" +
		"repository s3://backups unreachable (load index/1: timeout), retrying in 4s\n"
	if out.String() != want {
		t.Fatalf("notices:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestConnStringOfAConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Postgres.Port, cfg.Postgres.ConnectAddress, cfg.Postgres.Database = 5432, "10.0.0.5", ""
	if got := connString(cfg); got != "postgres://postgres@10.0.0.5:5432/postgres" {
		t.Fatalf("without a password or database: %q", got)
	}
	cfg.Postgres.Database = "app"
	cfg.Postgres.Superuser.Password = "p@ss:w/rd"
	got := connString(cfg)
	if !strings.HasPrefix(got, "postgres://postgres:") || !strings.HasSuffix(got, "@10.0.0.5:5432/app") || strings.Contains(got, "p@ss:w/rd") {
		t.Fatalf("a password with URL characters must be escaped: %q", got)
	}
	for _, addr := range []string{"", "*", "0.0.0.0"} {
		cfg.Postgres.ConnectAddress = addr
		if got := connString(cfg); !strings.Contains(got, "@127.0.0.1:5432/") {
			t.Fatalf("connect address %q: %q; want loopback", addr, got)
		}
	}
	// With the store's TLS, the jobs' connections check the server as the
	// agent's do.
	cfg.Etcd.TLS = config.TLSFiles{CAFile: "/etc/pgguard/certs/ca.crt", CertFile: "/etc/pgguard/certs/n1.crt", KeyFile: "/etc/pgguard/certs/n1.key"}
	u, err := url.Parse(connString(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("sslmode") != "verify-full" || q.Get("sslrootcert") != "/etc/pgguard/certs/ca.crt" {
		t.Fatalf("with etcd.tls: %q; want sslmode=verify-full and the CA as sslrootcert", u.RawQuery)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/pgguard":        "/usr/bin/pgguard",
		"s3://b/p-1_2.x,y@z+=":    "s3://b/p-1_2.x,y@z+=",
		"":                        "''",
		"/a b":                    "'/a b'",
		"it's":                    `'it'\''s'`,
		"$(rm -rf /)":             "'$(rm -rf /)'",
		"/path/with;semicolon&bg": "'/path/with;semicolon&bg'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
