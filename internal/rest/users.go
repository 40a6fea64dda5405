package rest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
	"github.com/pgguard/pgguard/internal/badinput"
	"github.com/pgguard/pgguard/internal/dcs"
	"github.com/pgguard/pgguard/internal/ha"
)

// UserStore is what managing users needs of the store.
type UserStore interface {
	Users(ctx context.Context) ([]auth.User, error)
	PutUser(ctx context.Context, u auth.User, create bool) error
	DeleteUser(ctx context.Context, name string) (bool, error)
	AppendHistory(ctx context.Context, e dcs.Event) error
}

// AddUser creates a user (or, with b.Replace, gives an existing one a new
// token, role and password) and returns the token, which exists nowhere
// else: the store keeps its hash. by is who asks, for the history.
func AddUser(ctx context.Context, st UserStore, b AddUserBody, by string) (NewUser, error) {
	if err := auth.CheckName(b.Name); err != nil {
		return NewUser{}, badinput.Wrap(err)
	}
	if !b.Role.Valid() {
		return NewUser{}, badinput.Errorf("role %q: one of viewer, operator, admin", b.Role)
	}
	token, hash, err := auth.NewToken()
	if err != nil {
		return NewUser{}, err
	}
	u := auth.User{Name: b.Name, Role: b.Role, TokenHash: hash, Created: time.Now().UTC()}
	if b.Password != "" {
		if u.Password, err = auth.HashPassword(b.Password); err != nil {
			return NewUser{}, badinput.Wrap(err)
		}
	}
	if err := st.PutUser(ctx, u, !b.Replace); err != nil {
		if errors.Is(err, dcs.ErrExists) {
			return NewUser{}, badinput.Errorf("user %s exists: remove it first, or replace it (a new token; --replace, \"replace\": true)", b.Name)
		}
		return NewUser{}, err
	}
	_ = st.AppendHistory(ctx, dcs.Event{Node: "api", Action: ha.EventUserAdd, Target: b.Name, Reason: "role " + string(b.Role), By: by, Result: "ok"})
	return NewUser{User: u.Public(), Token: token}, nil
}

// RemoveUser deletes a user: its token and sessions stop working.
func RemoveUser(ctx context.Context, st UserStore, name, by string) error {
	found, err := st.DeleteUser(ctx, name)
	if err != nil {
		return err
	}
	if !found {
		return badinput.Errorf("no user %q (GET /api/v1/users, pgguard ctl users list)", name)
	}
	_ = st.AppendHistory(ctx, dcs.Event{Node: "api", Action: ha.EventUserRemove, Target: name, By: by, Result: "ok"})
	return nil
}

// LoginBody is POST /api/v1/login's body.
type LoginBody struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// Session is the answer to a login: a bearer token for the session.
type Session struct {
	Token   string    `json:"token"`
	User    string    `json:"user"`
	Role    auth.Role `json:"role"`
	Expires time.Time `json:"expires"`
}

func (s *server) login(c *call) (any, error) {
	var b LoginBody
	if err := c.decode(&b); err != nil {
		return nil, err
	}
	select {
	case s.logins <- struct{}{}:
		defer func() { <-s.logins }()
	case <-c.ctx.Done():
		return nil, c.ctx.Err()
	}
	users, err := s.cfg.Store.Users(c.ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.Name == b.User && u.Password.Hash != "" && u.Password.Matches(b.Password) {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return nil, err
			}
			token := SessionPrefix + base64.RawURLEncoding.EncodeToString(key)
			if err := s.cfg.Store.OpenSession(c.ctx, auth.HashToken(token), u.Name, s.cfg.SessionTTL); err != nil {
				return nil, err
			}
			return Session{Token: token, User: u.Name, Role: u.Role, Expires: time.Now().Add(s.cfg.SessionTTL).UTC()}, nil
		}
	}
	// The same answer for an unknown user and a wrong password.
	return nil, &httpError{code: http.StatusUnauthorized, msg: "wrong user or password"}
}

func (s *server) logout(c *call) (any, error) {
	if c.id.Via != "session" {
		return nil, badRequest("logout ends a console session; a token is removed with its user")
	}
	token, _ := cutBearer(c.r.Header.Get("Authorization"))
	return c.after(s.cfg.Store.CloseSession(c.ctx, auth.HashToken(token)), fmt.Sprintf("session of %s ended", c.id.Name))
}

func cutBearer(h string) (string, bool) {
	if len(h) > 7 && h[:7] == "Bearer " {
		return h[7:], true
	}
	return "", false
}
