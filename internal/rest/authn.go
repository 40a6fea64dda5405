package rest

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/auth"
)

// SessionPrefix starts a console session's key (a user's token starts
// with auth.TokenPrefix).
const SessionPrefix = "pgs_"

// usersTTL is how long the API answers from its copy of the users: a
// removed user or a replaced token stops working within it.
const usersTTL = 2 * time.Second

// authenticate establishes who sent r: a bearer token (a user's token or
// a session's key), else a verified client certificate. code is 0 when it
// succeeded, else 401 (or 503 when the store cannot say) with why.
func (s *server) authenticate(r *http.Request) (auth.Identity, int, string) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || token == "" {
			return auth.Identity{}, http.StatusUnauthorized, "Authorization: expected 'Bearer TOKEN'"
		}
		return s.byToken(ctx, strings.TrimSpace(token))
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		// A certificate of the cluster's CA already opens the store to its
		// holder; it is an administrator unless a user of its name says
		// otherwise.
		id := auth.Identity{Name: cn, Role: auth.Admin, Via: "certificate"}
		users, err := s.usersNow(ctx)
		if err != nil {
			return id, http.StatusServiceUnavailable, "the store does not answer: " + err.Error()
		}
		for _, u := range users {
			if u.Name == cn {
				id.Role = u.Role
			}
		}
		return id, 0, ""
	}
	return auth.Identity{}, http.StatusUnauthorized, "authentication required: send 'Authorization: Bearer TOKEN' (pgguard ctl users add) or a client certificate of the cluster's CA"
}

func (s *server) byToken(ctx context.Context, token string) (auth.Identity, int, string) {
	users, err := s.usersNow(ctx)
	if err != nil {
		return auth.Identity{}, http.StatusServiceUnavailable, "the store does not answer: " + err.Error()
	}
	h := auth.HashToken(token)
	if strings.HasPrefix(token, SessionPrefix) {
		name, err := s.cfg.Store.Session(ctx, h)
		if err != nil {
			return auth.Identity{}, http.StatusServiceUnavailable, "the store does not answer: " + err.Error()
		}
		for _, u := range users {
			if name != "" && u.Name == name {
				return auth.Identity{Name: u.Name, Role: u.Role, Via: "session"}, 0, ""
			}
		}
		return auth.Identity{}, http.StatusUnauthorized, "the session has ended: log in again"
	}
	for range 2 {
		for _, u := range users {
			if subtle.ConstantTimeCompare([]byte(u.TokenHash), []byte(h)) == 1 {
				return auth.Identity{Name: u.Name, Role: u.Role, Via: "token"}, 0, ""
			}
		}
		// A user added a moment ago: read again, but at most missRate
		// times a second (bad tokens must not hammer the store).
		if !s.misses.Allow() {
			break
		}
		if users, err = s.usersNow(ctx, 0); err != nil {
			return auth.Identity{}, http.StatusServiceUnavailable, "the store does not answer: " + err.Error()
		}
	}
	return auth.Identity{}, http.StatusUnauthorized, "the token is not valid (not a user's token, or replaced)"
}

// missRate bounds the reads of the users that unknown tokens cause.
const missRate = 20

// usersNow reads the users unless the copy is younger than ttl (usersTTL
// when not given).
func (s *server) usersNow(ctx context.Context, ttl ...time.Duration) ([]auth.User, error) {
	limit := usersTTL
	if len(ttl) > 0 {
		limit = ttl[0]
	}
	s.mu.Lock()
	if time.Since(s.usersAt) < limit {
		u := s.users
		s.mu.Unlock()
		return u, nil
	}
	s.mu.Unlock()
	users, err := s.cfg.Store.Users(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.users, s.usersAt = users, time.Now()
	s.mu.Unlock()
	return users, nil
}

// forgetUsers makes the next request read the users again (after a
// change through this agent).
func (s *server) forgetUsers() {
	s.mu.Lock()
	s.usersAt = time.Time{}
	s.mu.Unlock()
}
