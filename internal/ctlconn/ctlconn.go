// Package ctlconn is how `pgguard ctl` and `pgguard jobs` reach a
// cluster, as ctl.yaml says: through the agents' REST API when it lists
// api.urls, else straight to the store. Either way the commands get the
// same operations (ops.Operator, ops.JobOperator) and the same checks.
package ctlconn

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ops"
	"github.com/pgguard/pgguard/internal/rest"
)

// Users manages the API's users.
type Users interface {
	AddUser(ctx context.Context, b rest.AddUserBody) (rest.NewUser, error)
	RemoveUser(ctx context.Context, name string) error
	ListUsers(ctx context.Context) ([]auth.Public, error)
}

// Conn is an open way to one cluster.
type Conn struct {
	Cluster string
	Ops     ops.Operator
	Jobs    ops.JobOperator
	Users   Users
	// Via says how: "api" or "store".
	Via   string
	close func()
}

// Close releases the connection.
func (c *Conn) Close() {
	if c.close != nil {
		c.close()
	}
}

// Open reads the ctl configuration at path and connects. by names the
// operator for the history; progress receives the operations' progress
// lines.
func Open(path, by string, progress io.Writer) (*Conn, error) {
	cfg, err := config.LoadCtl(path)
	if err != nil {
		return nil, badinput.Wrap(err)
	}
	if len(cfg.API.URLs) > 0 {
		return openAPI(path, cfg, progress)
	}
	storeTLS, err := cfg.Etcd.TLS.ClientConfig()
	if err != nil {
		return nil, badinput.Wrap(fmt.Errorf("ctl config %s: etcd.tls: %w", path, err))
	}
	store, err := dcs.Open(dcs.Options{Endpoints: cfg.Etcd.Endpoints, DialTimeout: cfg.Etcd.DialTimeout.D(), Cluster: cfg.Cluster, TTL: 4 * time.Second, TLS: storeTLS})
	if err != nil {
		return nil, err
	}
	return &Conn{Cluster: cfg.Cluster, Via: "store", close: func() { store.Close() },
		Ops:   &ops.Ops{Store: store, Cluster: cfg.Cluster, By: by, Progress: progress},
		Jobs:  &ops.Jobs{Store: store, By: by},
		Users: storeUsers{store: store, by: by}}, nil
}

func openAPI(path string, cfg config.Ctl, progress io.Writer) (*Conn, error) {
	tlsCfg, err := cfg.API.ClientTLS()
	if err != nil {
		return nil, badinput.Wrap(fmt.Errorf("ctl config %s: api.tls: %w", path, err))
	}
	var token string
	if cfg.API.TokenFile != "" {
		b, err := os.ReadFile(cfg.API.TokenFile)
		if err != nil {
			return nil, badinput.Wrap(fmt.Errorf("ctl config %s: api.token_file: %w", path, err))
		}
		token = strings.TrimSpace(string(b))
	}
	c, err := rest.NewClient(cfg.API.URLs, token, tlsCfg)
	if err != nil {
		return nil, err
	}
	c.Progress, c.Cluster = progress, cfg.Cluster
	return &Conn{Cluster: cfg.Cluster, Via: "api", Ops: c, Jobs: c, Users: c}, nil
}

// storeUsers manages users in the store directly (a holder of a store
// certificate is an administrator).
type storeUsers struct {
	store *dcs.Store
	by    string
}

func (s storeUsers) AddUser(ctx context.Context, b rest.AddUserBody) (rest.NewUser, error) {
	return rest.AddUser(ctx, s.store, b, s.by)
}

func (s storeUsers) RemoveUser(ctx context.Context, name string) error {
	return rest.RemoveUser(ctx, s.store, name, s.by)
}

func (s storeUsers) ListUsers(ctx context.Context) ([]auth.Public, error) {
	us, err := s.store.Users(ctx)
	out := make([]auth.Public, 0, len(us))
	for _, u := range us {
		out = append(out, u.Public())
	}
	return out, err
}
