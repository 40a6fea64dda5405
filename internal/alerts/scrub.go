package alerts

import (
	"regexp"
	"sort"
	"strings"
)

// Scrubber removes what looks like a secret from a text before it leaves
// the agent: an alert's summary and details come from history reasons and
// command errors, which may quote a connection string, a URL with
// credentials, an environment variable or a server's reply. It removes
// the secrets it was told of (the node's passwords, keys and tokens)
// wherever they appear, and by pattern: credentials in URLs, key=value and
// key: value pairs whose key names a password, passphrase, secret, token,
// key or signature, HTTP authorisation schemes, PEM private keys and
// cloud access key ids. It errs on the side of removing too much.
type Scrubber struct {
	known []string
}

// Redacted stands where a secret was.
const Redacted = "[redacted]"

// NewScrubber scrubs the patterns and each of known (values shorter than
// four characters are not secrets worth matching everywhere: they would
// blank out ordinary words).
func NewScrubber(known ...string) *Scrubber {
	s := &Scrubber{}
	for _, k := range known {
		if k = strings.TrimSpace(k); len(k) >= 4 {
			s.known = append(s.known, k)
		}
	}
	// Longest first, so that a secret containing another goes whole.
	sort.Slice(s.known, func(i, j int) bool { return len(s.known[i]) > len(s.known[j]) })
	return s
}

var (
	pemBlock = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`)
	// scheme://user:password@ or scheme://token@: the whole user part.
	urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@'"]+@`)
	// password=..., "token": "...", PGGUARD_PASSPHRASE=..., X-Api-Key: ...,
	// access_key=...; the value runs to a space, a quote's end or a
	// separator.
	secretPair = regexp.MustCompile(`(?i)([A-Za-z0-9_.-]*(?:passw(?:or)?d|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|secret[_-]?key|signature|credential|auth(?:orization)?)[A-Za-z0-9_.-]*["']?\s*[=:]\s*)("[^"]*"|'[^']*'|(?:(?:bearer|basic|token)\s+)?[^\s,;&"'()\[\]{}]+)`)
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic|digest|negotiate)\s+[A-Za-z0-9._~+/=-]{6,}`)
	// AWS-style access key ids.
	accessKeyID = regexp.MustCompile(`\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b`)
)

// Text returns t without the secrets it may hold.
func (s *Scrubber) Text(t string) string {
	if s != nil {
		for _, k := range s.known {
			t = strings.ReplaceAll(t, k, Redacted)
		}
	}
	t = pemBlock.ReplaceAllString(t, Redacted)
	t = urlUserinfo.ReplaceAllString(t, "${1}"+Redacted+"@")
	t = secretPair.ReplaceAllString(t, "${1}"+Redacted)
	t = authScheme.ReplaceAllString(t, "${1} "+Redacted)
	t = accessKeyID.ReplaceAllString(t, Redacted)
	return t
}
