package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/storage/storagetest"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func TestS3WrappedConformance(t *testing.T) {
	srv := testcluster.StartS3(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		limited := storage.WithRateLimit(openS3(t, srv, "wrapped/"+randomHex(t)),
			storage.NewFixedLimiter(1<<30), storage.NewFixedLimiter(1<<30))
		return storage.WithRetry(limited, storage.RetryPolicy{ReconnectTimeout: time.Minute})
	})
}

func TestS3ErrorsTellTheOperatorWhatToFix(t *testing.T) {
	srv := testcluster.StartS3(t)
	const wrongSecret = "wrong-secret-0123456789"
	badSecret := srv.Options()
	badSecret.SecretKey = wrongSecret
	badKey := srv.Options()
	badKey.AccessKey = "no-such-key"
	cases := []struct {
		name     string
		location string
		opts     storage.S3Options
		hint     string
	}{
		{"wrong secret key", srv.URL("x"), badSecret, "check the access key and secret key"},
		{"unknown access key", srv.URL("x"), badKey, "check the access key and secret key"},
		{"missing bucket", "s3://no-such-bucket/x", srv.Options(), `bucket "no-such-bucket" does not exist`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := storage.Open(context.Background(), tc.location, tc.opts)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			err = b.Save(context.Background(), "obj", strings.NewReader("data"), 4)
			if !storage.IsPermanent(err) {
				t.Fatalf("save: err = %v, want a permanent error", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.hint) {
				t.Fatalf("error %q should say %q", msg, tc.hint)
			}
			if strings.Contains(msg, wrongSecret) || strings.Contains(msg, srv.SecretKey) {
				t.Fatalf("error leaks a secret key: %q", msg)
			}
		})
	}
}

func TestS3CheckReportsAMissingBucket(t *testing.T) {
	srv := testcluster.StartS3(t)
	opts := srv.Options()
	good, err := storage.NewS3(srv.Bucket, "p", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Check(context.Background()); err != nil {
		t.Fatalf("check of the existing bucket: %v", err)
	}
	missing, err := storage.NewS3("absent-bucket", "p", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.Check(context.Background()); !storage.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("check of a missing bucket: %v, want a permanent does-not-exist error", err)
	}
}

func TestS3UnreachableServerIsRetryable(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testcluster.FreePort(t)) // nothing listens there
	b, err := storage.NewS3("bucket", "p", storage.S3Options{
		Endpoint: "http://" + addr, Region: "us-east-1", AccessKey: "a", SecretKey: "s", PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Stat(context.Background(), "obj")
	if !storage.IsRetryable(err) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("stat against a closed port: %v, want a retryable error naming %s", err, addr)
	}
}

// BK-9: a transfer that loses the repository waits for it to come back.
func TestS3RetryWaitsOutAStoppedServer(t *testing.T) {
	srv := testcluster.StartS3(t)
	retrying := make(chan error, 100)
	b := storage.WithRetry(openS3(t, srv, "reconnect"), storage.RetryPolicy{
		InitialBackoff:   50 * time.Millisecond,
		MaxBackoff:       500 * time.Millisecond,
		ReconnectTimeout: 2 * time.Minute,
		OnRetry: func(op, name string, err error, wait time.Duration) {
			retrying <- err
		},
	})
	srv.Stop()

	data := bytes.Repeat([]byte("wal segment "), 100_000)
	done := make(chan error, 1)
	go func() {
		done <- b.Save(context.Background(), "wal/000000010000000000000001", bytes.NewReader(data), int64(len(data)))
	}()
	// Keep the server down across several retries before bringing it back.
	seen := 0
	for seen < 3 {
		select {
		case err := <-retrying:
			if !storage.IsRetryable(err) {
				t.Fatalf("failure while the server is down: %v, want retryable", err)
			}
			seen++
		case err := <-done:
			t.Fatalf("save finished while the server was down (after %d retries): %v", seen, err)
		case <-time.After(time.Minute):
			t.Fatalf("only %d retries reported within a minute of stopping the server", seen)
		}
	}
	srv.Start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("save after the server came back: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("save did not finish within 2 minutes of restarting the server (retries seen: %d)", len(retrying))
	}
	if got := readAll(t, b, "wal/000000010000000000000001", 0, 0); !bytes.Equal(got, data) {
		t.Fatalf("after reconnect loaded %d bytes, not the %d saved", len(got), len(data))
	}
	t.Logf("save retried %d times while the server was down", seen+len(retrying))
}

func TestS3UntrustedCertificateIsPermanent(t *testing.T) {
	tlsServer := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsServer.Close()
	b, err := storage.NewS3("bucket", "p", storage.S3Options{
		Endpoint: tlsServer.URL, Region: "us-east-1", AccessKey: "a", SecretKey: "s", PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Stat(context.Background(), "obj")
	if !storage.IsPermanent(err) || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("stat against a self-signed endpoint: %v, want a permanent certificate error", err)
	}
}
