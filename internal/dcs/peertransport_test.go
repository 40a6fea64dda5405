package dcs

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// The embedded member's raft peer streams rely on the read timeout of
// etcd's timeout transport to drop a stream whose packets are lost. etcd
// v3.7.3 never applied it (third_party/etcd-client-pkg/PGGUARD-PATCH.md);
// without it the store stayed down ~25 s after a 30 s partition healed.
func TestPeerStreamTransportTimesOutASilentRead(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release // a stream that goes silent, as behind dropped packets
	}))
	defer srv.Close()
	defer close(release)

	tr, err := transport.NewTimeoutTransport(transport.TLSInfo{}, time.Second, 200*time.Millisecond, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		done <- err
	}()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read of a silent stream ended with %v, want a timeout error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read of a silent stream still blocked after 10 s: the transport's 200 ms read timeout is not applied (is the replace of go.etcd.io/etcd/client/pkg/v3 in go.mod?)")
	}
}
