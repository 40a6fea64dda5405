package storage_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/storage"
	"github.com/pgguard/pgguard/internal/storage/storagetest"
	"github.com/pgguard/pgguard/internal/testcluster"
)

func TestMemConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return storage.NewMem() })
}

func newLocal(t *testing.T) *storage.Local {
	t.Helper()
	b, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatalf("new local backend: %v", err)
	}
	return b
}

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return newLocal(t) })
}

// The wrappers must keep the contract: retry outside, rate limit inside, as
// production wires them.
func TestWrappedLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		limited := storage.WithRateLimit(newLocal(t),
			storage.NewFixedLimiter(1<<30), storage.NewFixedLimiter(1<<30))
		return storage.WithRetry(limited, storage.RetryPolicy{ReconnectTimeout: time.Minute})
	})
}

func TestS3Conformance(t *testing.T) {
	srv := testcluster.StartS3(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return openS3(t, srv, "conformance/"+randomHex(t))
	})
}

func openS3(t *testing.T, srv *testcluster.S3Server, prefix string) storage.Backend {
	t.Helper()
	b, err := storage.Open(context.Background(), srv.URL(prefix), srv.Options())
	if err != nil {
		t.Fatalf("open %s: %v", srv.URL(prefix), err)
	}
	return b
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}
