// Package auth is who may do what through the REST API and the console:
// three roles, users with a bearer token and optionally a password, and
// sessions the console's login opens. Tokens and session keys are random
// 256-bit values, kept only as their SHA-256 (a stolen store copy does not
// log anyone in); passwords are kept as argon2id hashes.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/argon2"
)

// Role is what a caller may do. Each role may do everything of the roles
// below it.
type Role string

const (
	// Viewer reads: status, history, explain, backups, jobs, runs, drills.
	Viewer Role = "viewer"
	// Operator also switches over, pauses and resumes, runs jobs,
	// backups and drills.
	Operator Role = "operator"
	// Admin may do everything: takeover (forced too), reinit, stop and
	// start, restore-cluster, configuration, membership, users.
	Admin Role = "admin"
)

var rank = map[Role]int{Viewer: 1, Operator: 2, Admin: 3}

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return rank[r] > 0 }

// Allows reports whether a caller with role r may do what needs role need.
func (r Role) Allows(need Role) bool { return rank[r] > 0 && rank[r] >= rank[need] }

// ParseRole checks a role's name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("role %q: one of viewer, operator, admin", s)
	}
	return r, nil
}

// User is one API user as the store keeps it.
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// TokenHash is the hex SHA-256 of the user's bearer token.
	TokenHash string `json:"token_sha256"`
	// Password is the argon2id hash of the console password ("" none).
	Password PasswordHash `json:"password,omitzero"`
	Created  time.Time    `json:"created"`
}

// Public is what the API shows of a user: no hash of anything.
type Public struct {
	Name        string    `json:"name"`
	Role        Role      `json:"role"`
	HasPassword bool      `json:"has_password"`
	Created     time.Time `json:"created"`
}

// Public strips the hashes.
func (u User) Public() Public {
	return Public{Name: u.Name, Role: u.Role, HasPassword: u.Password.Hash != "", Created: u.Created}
}

var userName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)

// CheckName checks a user's name (it is part of a store key and of the
// history's "by").
func CheckName(name string) error {
	if !userName.MatchString(name) {
		return fmt.Errorf("user name %q: 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	return nil
}

// TokenPrefix starts every token, so that a token is recognisable in a
// secret scanner and in a mistaken paste.
const TokenPrefix = "pgg_"

// NewToken returns a new random token and the hash the store keeps.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the hex SHA-256 of a token: tokens are random 256-bit
// values, so a fast hash is enough (nothing to brute-force).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// PasswordHash is an argon2id hash with its parameters.
type PasswordHash struct {
	Salt    string `json:"salt"`
	Hash    string `json:"hash"`
	Time    uint32 `json:"time"`
	MemoryK uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
}

// MinPassword is the shortest password a user may set.
const MinPassword = 12

// HashPassword hashes a console password (argon2id, 64 MiB, 1 pass: the
// RFC 9106 second recommendation scaled to a login, not a key).
func HashPassword(pw string) (PasswordHash, error) {
	if len(pw) < MinPassword {
		return PasswordHash{}, fmt.Errorf("password: at least %d characters", MinPassword)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return PasswordHash{}, err
	}
	h := PasswordHash{Salt: base64.RawStdEncoding.EncodeToString(salt), Time: 1, MemoryK: 64 * 1024, Threads: 2}
	h.Hash = base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte(pw), salt, h.Time, h.MemoryK, h.Threads, 32))
	return h, nil
}

// Matches reports whether pw is the password; parameters read from the
// store are capped so a forged record cannot make a login cost minutes.
func (h PasswordHash) Matches(pw string) bool {
	salt, err1 := base64.RawStdEncoding.DecodeString(h.Salt)
	want, err2 := base64.RawStdEncoding.DecodeString(h.Hash)
	if err1 != nil || err2 != nil || len(want) != 32 || h.Time < 1 || h.Time > 10 || h.MemoryK < 8*1024 || h.MemoryK > 256*1024 || h.Threads < 1 || h.Threads > 8 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, h.Time, h.MemoryK, h.Threads, 32)
	return subtle.ConstantTimeCompare(got, want) == 1
}

// Identity is who made a request, as the API established it.
type Identity struct {
	Name string
	Role Role
	// Via is how: "token", "session" or "certificate".
	Via string
}

// By is the history's "by" for a request of id from addr.
func (id Identity) By() string { return id.Name + " (api " + id.Via + ")" }

// WriteUsers prints the users as a table.
func WriteUsers(w io.Writer, us []Public) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tPASSWORD\tCREATED")
	for _, u := range us {
		pw := "-"
		if u.HasPassword {
			pw = "set"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, pw, u.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}
