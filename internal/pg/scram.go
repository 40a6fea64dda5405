package pg

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// scramIterations is PostgreSQL's default (scram_iterations).
const scramIterations = 4096

// ScramVerifier is the SCRAM-SHA-256 secret PostgreSQL stores for
// password (its pg_authid.rolpassword form), computed here so that
// ALTER ROLE … PASSWORD sends the verifier and never the password: a
// statement can reach the server log. The password is used as it is,
// which is what SASLprep does to the printable ASCII passwords the
// configuration accepts.
func ScramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifier(password, salt, scramIterations)
}

func scramVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("derive the SCRAM key: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(server)), nil
}

// ScramVerifierWithSalt recomputes a verifier for password with the salt
// and iterations of an existing one (tests compare with PostgreSQL's).
func ScramVerifierWithSalt(password, existing string) (string, error) {
	var iterations int
	var salt64 string
	rest, ok := strings.CutPrefix(existing, "SCRAM-SHA-256$")
	if !ok {
		return "", fmt.Errorf("%q is not a SCRAM-SHA-256 verifier", existing)
	}
	head, _, _ := strings.Cut(rest, "$")
	it, s64, ok := strings.Cut(head, ":")
	if !ok {
		return "", fmt.Errorf("%q is not a SCRAM-SHA-256 verifier", existing)
	}
	if _, err := fmt.Sscanf(it, "%d", &iterations); err != nil {
		return "", err
	}
	salt64 = s64
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", err
	}
	return scramVerifier(password, salt, iterations)
}
