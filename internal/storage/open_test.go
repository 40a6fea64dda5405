package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/storage"
)

func TestParseLocation(t *testing.T) {
	cases := []struct {
		name     string
		location string
		want     storage.Location
	}{
		{"a plain absolute path is a local directory", "/var/lib/pgguard/repo/", storage.Location{Scheme: "file", Path: "/var/lib/pgguard/repo"}},
		{"a file URL is a local directory", "file:///var/lib/pgguard/repo", storage.Location{Scheme: "file", Path: "/var/lib/pgguard/repo"}},
		{"a file URL may name localhost", "file://localhost/srv/repo", storage.Location{Scheme: "file", Path: "/srv/repo"}},
		{"an s3 URL names bucket and prefix", "s3://backups/prod/main/", storage.Location{Scheme: "s3", Bucket: "backups", Prefix: "prod/main"}},
		{"an s3 URL without a prefix uses the bucket root", "s3://backups", storage.Location{Scheme: "s3", Bucket: "backups"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storage.ParseLocation(tc.location)
			if err != nil || got != tc.want {
				t.Fatalf("ParseLocation(%q) = %+v, %v; want %+v", tc.location, got, err, tc.want)
			}
		})
	}
}

func TestParseLocationRejectsWithTheAcceptedForms(t *testing.T) {
	cases := []struct {
		name     string
		location string
		why      string
	}{
		{"empty location", "", "empty"},
		{"relative path", "backups/repo", "relative"},
		{"file URL with a host", "file://nas/repo", "must not name a host"},
		{"file URL with a relative path", "file:repo", "absolute"},
		{"s3 URL without a bucket", "s3:///prefix", "missing bucket"},
		{"s3 URL with dot-dot in the prefix", "s3://b/a/../c", `".."`},
		{"s3 URL with an empty prefix element", "s3://b/a//c", "empty"},
		{"unknown scheme", "gs://bucket/x", `unsupported scheme "gs"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storage.ParseLocation(tc.location)
			if err == nil {
				t.Fatalf("ParseLocation(%q) succeeded", tc.location)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.why) || !strings.Contains(msg, "s3://bucket[/prefix]") || !strings.Contains(msg, "file:///") {
				t.Fatalf("error %q should say %q and list the accepted forms", msg, tc.why)
			}
		})
	}
}

func TestParseLocationNeverEchoesCredentialsInTheURL(t *testing.T) {
	for _, loc := range []string{"s3://AKIAEXAMPLE:s3cr3tV4lue@bucket/x", "s3://s3cr3tV4lue@bucket/x"} {
		_, err := storage.ParseLocation(loc)
		if err == nil {
			t.Fatalf("ParseLocation(%q) accepted credentials in the URL", loc)
		}
		if strings.Contains(err.Error(), "s3cr3tV4lue") || strings.Contains(err.Error(), "AKIAEXAMPLE") {
			t.Fatalf("error leaks the credentials: %v", err)
		}
	}
}

func TestS3OptionsWithEnv(t *testing.T) {
	env := map[string]string{
		"AWS_ENDPOINT_URL":      "http://generic:9000",
		"AWS_ENDPOINT_URL_S3":   "http://s3-specific:9000",
		"AWS_DEFAULT_REGION":    "eu-west-1",
		"AWS_ACCESS_KEY_ID":     "env-access",
		"AWS_SECRET_ACCESS_KEY": "env-secret",
		"AWS_SESSION_TOKEN":     "env-token",
	}
	getenv := func(k string) string { return env[k] }
	cases := []struct {
		name string
		in   storage.S3Options
		want storage.S3Options
	}{
		{"empty options come from the environment, the S3-specific endpoint first",
			storage.S3Options{},
			storage.S3Options{Endpoint: "http://s3-specific:9000", Region: "eu-west-1", AccessKey: "env-access", SecretKey: "env-secret", SessionToken: "env-token"}},
		{"explicit options win over the environment",
			storage.S3Options{Endpoint: "minio:9000", Region: "us-east-2", AccessKey: "a", SecretKey: "s", PathStyle: true},
			storage.S3Options{Endpoint: "minio:9000", Region: "us-east-2", AccessKey: "a", SecretKey: "s", PathStyle: true}},
		{"a configured access key never pairs with the environment's secret",
			storage.S3Options{AccessKey: "a"},
			storage.S3Options{Endpoint: "http://s3-specific:9000", Region: "eu-west-1", AccessKey: "a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.WithEnv(getenv); got != tc.want {
				t.Fatalf("WithEnv = %+v, want %+v", got, tc.want)
			}
		})
	}
	onlyGeneric := func(k string) string {
		if k == "AWS_ENDPOINT_URL" || k == "AWS_REGION" {
			return env["AWS_ENDPOINT_URL"]
		}
		return ""
	}
	if got := (storage.S3Options{}).WithEnv(onlyGeneric); got.Endpoint != "http://generic:9000" {
		t.Fatalf("endpoint from AWS_ENDPOINT_URL = %q", got.Endpoint)
	}
}

func TestOpenLocalCreatesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "repo")
	for _, loc := range []string{dir, "file://" + dir} {
		b, err := storage.Open(context.Background(), loc, storage.S3Options{})
		if err != nil {
			t.Fatalf("open %s: %v", loc, err)
		}
		if b.Location() != dir {
			t.Fatalf("location = %q, want %q", b.Location(), dir)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("repository directory not created: %v", err)
		}
	}
}

func TestOpenS3NamesBucketAndEndpointButNotTheSecret(t *testing.T) {
	b, err := storage.Open(context.Background(), "s3://bucket/prefix", storage.S3Options{
		Endpoint: "http://127.0.0.1:9", AccessKey: "access", SecretKey: "very-secret-key",
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	loc := b.Location()
	if !strings.Contains(loc, "s3://bucket/prefix") || !strings.Contains(loc, "http://127.0.0.1:9") || strings.Contains(loc, "very-secret-key") {
		t.Fatalf("location %q should name bucket, prefix and endpoint, and never the secret", loc)
	}
}

func TestOpenS3RejectsBadEndpointsAndHalfCredentials(t *testing.T) {
	cases := []struct {
		name string
		opts storage.S3Options
		want string
	}{
		{"endpoint with a path", storage.S3Options{Endpoint: "http://host:9000/bucket"}, "expected host[:port]"},
		{"endpoint with an odd scheme", storage.S3Options{Endpoint: "ftp://host"}, "expected host[:port]"},
		{"access key without secret", storage.S3Options{Endpoint: "host:9000", AccessKey: "a", SecretKey: ""}, "both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_SECRET_ACCESS_KEY", "")
			_, err := storage.Open(context.Background(), "s3://b/p", tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
