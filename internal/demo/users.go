package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/certs"
)

// TokenFile holds the demo's admin token; PasswordFile its console
// password. Both are readable by the user who ran the demo only.
func (l Layout) TokenFile() string { return filepath.Join(l.Dir, "admin.token") }

// PasswordFile holds the demo admin's console password.
func (l Layout) PasswordFile() string { return filepath.Join(l.Dir, "admin.password") }

// CtlAPIPath is a ctl configuration that goes through the agents' API
// with the admin token.
func (l Layout) CtlAPIPath() string { return filepath.Join(l.Dir, "ctl-api.yaml") }

// CreateUser makes an API user in the running cluster and returns its
// token (and password, when withPassword).
func (l Layout) CreateUser(ctx context.Context, name string, role auth.Role, withPassword bool) (token, password string, err error) {
	store, err := l.OpenStore()
	if err != nil {
		return "", "", err
	}
	defer store.Close()
	token, hash, err := auth.NewToken()
	if err != nil {
		return "", "", err
	}
	u := auth.User{Name: name, Role: role, TokenHash: hash, Created: time.Now().UTC()}
	if withPassword {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return "", "", err
		}
		password = base64.RawURLEncoding.EncodeToString(b)
		if u.Password, err = auth.HashPassword(password); err != nil {
			return "", "", err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := store.PutUser(cctx, u, false); err != nil {
		return "", "", fmt.Errorf("create the API user %s: %w", name, err)
	}
	return token, password, nil
}

// CreateAdmin makes the demo's admin user, writes its token and password
// to TokenFile and PasswordFile, and a ctl configuration that uses them.
func (l Layout) CreateAdmin(ctx context.Context) error {
	token, password, err := l.CreateUser(ctx, "admin", auth.Admin, true)
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.TokenFile(), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(l.PasswordFile(), []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	return os.WriteFile(l.CtlAPIPath(), []byte(l.CtlAPIYAML(l.TokenFile())), 0o600)
}

// CtlAPIYAML is a ctl configuration that reaches the cluster through the
// agents' API with the token in tokenFile.
func (l Layout) CtlAPIYAML(tokenFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster: %s\napi:\n  urls:\n", l.Cluster)
	for _, u := range l.ClientEndpoints().API {
		b.WriteString("    - " + u + "\n")
	}
	fmt.Fprintf(&b, "  token_file: %s\n", tokenFile)
	if l.HTTPS() {
		fmt.Fprintf(&b, "  tls:\n    ca_file: %s\n", certs.CAFile(l.CertsDir()))
	}
	return b.String()
}
