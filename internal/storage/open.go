package storage

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// acceptedForms is quoted in every error about a repository location.
const acceptedForms = "an absolute path, file:///absolute/path or s3://bucket[/prefix]"

// Open returns the backend a repository location names:
//
//	/var/lib/pgguard/repo            local directory
//	file:///var/lib/pgguard/repo     local directory
//	s3://bucket/some/prefix          S3 bucket, keys under "some/prefix/"
//
// For S3, empty fields of opts are taken from the environment (see WithEnv).
// Open does not contact an S3 server; use (*S3).Check for an early probe.
func Open(ctx context.Context, location string, opts S3Options) (Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	loc, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case "file":
		return NewLocal(loc.Path)
	default:
		return NewS3(loc.Bucket, loc.Prefix, opts.WithEnv(os.Getenv))
	}
}

// Location is a parsed repository location.
type Location struct {
	Scheme string // "file" or "s3"
	Path   string // file: absolute, cleaned directory
	Bucket string // s3
	Prefix string // s3: key prefix without leading or trailing "/"
}

// ParseLocation parses the forms Open accepts.
func ParseLocation(location string) (Location, error) {
	shown := location // never shows a password someone put in the URL
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("repository location %q: %s; use %s", shown, why, acceptedForms)
	}
	if location == "" {
		return bad("empty")
	}
	if strings.HasPrefix(location, "/") {
		return Location{Scheme: "file", Path: filepath.Clean(location)}, nil
	}
	u, err := url.Parse(location)
	if err != nil {
		if i := strings.LastIndex(location, "@"); i >= 0 {
			shown = "…" + location[i:]
		}
		return bad("not a path or URL")
	}
	if u.User != nil {
		// Both parts of user:password may be keys.
		redacted := *u
		redacted.User = url.User("xxxxx")
		shown = redacted.String()
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("a file URL must not name a host (write file:///path, three slashes)")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return bad("a file URL takes no query or fragment")
		}
		if !strings.HasPrefix(u.Path, "/") {
			return bad("the path must be absolute")
		}
		return Location{Scheme: "file", Path: filepath.Clean(u.Path)}, nil
	case "s3":
		if u.Host == "" {
			return bad("missing bucket name")
		}
		if u.User != nil {
			return bad("credentials do not belong in the URL; pass them in the configuration or AWS_* environment variables")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return bad("an s3 URL takes no query or fragment")
		}
		prefix := strings.Trim(u.Path, "/")
		for _, elem := range strings.Split(prefix, "/") {
			if elem == "." || elem == ".." || (elem == "" && prefix != "") {
				return bad("the prefix must not contain empty, \".\" or \"..\" elements")
			}
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	case "":
		return bad("relative paths are ambiguous")
	default:
		return bad(fmt.Sprintf("unsupported scheme %q", u.Scheme))
	}
}

// WithEnv returns opts with empty fields filled from the usual AWS
// environment variables, read through getenv (os.Getenv in production):
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION or AWS_DEFAULT_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. Keys are
// taken from the environment only as a pair, and only when opts set neither.
func (o S3Options) WithEnv(getenv func(string) string) S3Options {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	if o.Endpoint == "" {
		o.Endpoint = first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	if o.Region == "" {
		o.Region = first("AWS_REGION", "AWS_DEFAULT_REGION")
	}
	if o.AccessKey == "" && o.SecretKey == "" {
		o.AccessKey = getenv("AWS_ACCESS_KEY_ID")
		o.SecretKey = getenv("AWS_SECRET_ACCESS_KEY")
		if o.SessionToken == "" {
			o.SessionToken = getenv("AWS_SESSION_TOKEN")
		}
	}
	return o
}
