package demo

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pgguard/pgguard/internal/certs"
	"github.com/pgguard/pgguard/internal/osuser"
)

// The layout's database passwords. PostgreSQL trusts no connection, not
// even on loopback, so a local cluster needs passwords like any other:
// they are generated once per layout, go into every node's node.yaml
// (readable by the database account only) and into one libpq password
// file for the clients the demo and the tests start. No password is ever
// in a command line, a connection string or a log line.

// The roles every layout's nodes use.
const (
	Superuser       = "postgres"
	ReplicationUser = "replicator"
)

// PGPassFile is the libpq password file of the layout's clients: the
// superuser's and the replication role's passwords for the layout's hosts
// only, mode 0600, owned by the database account (root reads it too).
func (l Layout) PGPassFile() string { return filepath.Join(l.Dir, "pgpass") }

// ClientParams are the connection settings every client of the layout
// adds to its host, port, user and database: the password file and, with
// TLS, verify-full against the layout's CA.
func (l Layout) ClientParams() string {
	s := "passfile=" + quoteConninfo(l.PGPassFile())
	if l.TLS && len(l.External) == 0 {
		s += " sslmode=verify-full sslrootcert=" + quoteConninfo(certs.CAFile(l.CertsDir()))
	}
	return s
}

// ClientDSN is a superuser connection string to host:port (a node, a
// proxy) with the layout's ClientParams.
func (l Layout) ClientDSN(host string, port int) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres connect_timeout=2 %s", host, port, Superuser, l.ClientParams())
}

// quoteConninfo quotes a connection string value when it must be (so that
// the usual paths stay unquoted inside a shell's single quotes).
func quoteConninfo(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Passwords are the layout's superuser and replication passwords.
type Passwords struct{ Superuser, Replication string }

// Passwords reads the layout's passwords from its password file.
func (l Layout) Passwords() (Passwords, error) {
	data, err := os.ReadFile(l.PGPassFile())
	if err != nil {
		return Passwords{}, fmt.Errorf("the layout's passwords: %w", err)
	}
	var pw Passwords
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// The passwords hold no ':' (randomPassword), the roles neither;
		// a host may (IPv6, escaped).
		f := strings.Split(sc.Text(), ":")
		if len(f) < 5 {
			continue
		}
		switch f[len(f)-2] {
		case Superuser:
			pw.Superuser = f[len(f)-1]
		case ReplicationUser:
			pw.Replication = f[len(f)-1]
		}
	}
	if pw.Superuser == "" || pw.Replication == "" {
		return Passwords{}, errors.New("the layout's password file " + l.PGPassFile() + " lacks a password")
	}
	return pw, nil
}

// writePassFile generates the layout's passwords unless its password file
// holds them, and (re)writes the file for the layout's hosts.
func (l Layout) writePassFile(acct osuser.Account) error {
	pw, err := l.Passwords()
	if err != nil {
		if pw.Superuser, err = randomPassword(); err != nil {
			return err
		}
		if pw.Replication, err = randomPassword(); err != nil {
			return err
		}
	}
	hosts := map[string]bool{"127.0.0.1": true, "localhost": true}
	for _, hs := range l.Hosts {
		for _, h := range hs {
			hosts[h] = true
		}
	}
	var names []string
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, h := range names {
		h = strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(h)
		// Any port: the layout's proxies and HAProxy are on these hosts
		// too, and clients check every server with verify-full first.
		fmt.Fprintf(&b, "%s:*:*:%s:%s\n", h, Superuser, pw.Superuser)
		fmt.Fprintf(&b, "%s:*:*:%s:%s\n", h, ReplicationUser, pw.Replication)
	}
	tmp := l.PGPassFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write the layout's password file: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	if err := acct.ChownTree(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, l.PGPassFile())
}

// randomPassword is 24 random bytes, base64url: printable, and without
// the ':' and '\' a password file would have to escape.
func randomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
