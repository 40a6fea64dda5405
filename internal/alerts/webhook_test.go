package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/alerts"
	"github.com/pgguard/pgguard/internal/testcluster"
)

// receiver is a local HTTP receiver that keeps every request and answers
// with the status its script gives for the n-th request.
type receiver struct {
	srv    *httptest.Server
	status func(n int) int

	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
	arrivals chan struct{}
}

func startReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{status: status, arrivals: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.headers = append(r.headers, req.Header.Clone())
		n := len(r.bodies)
		r.mu.Unlock()
		code := http.StatusOK
		if r.status != nil {
			code = r.status(n)
		}
		if code == http.StatusFound {
			http.Redirect(w, req, "http://127.0.0.1:1/elsewhere", code)
		} else {
			w.WriteHeader(code)
			fmt.Fprintf(w, "answer %d", code)
		}
		r.arrivals <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) waitRequests(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.arrivals:
		case <-time.After(10 * time.Second):
			t.Fatalf("the receiver got %d requests, want %d", len(r.requests()), n)
		}
	}
}

func (r *receiver) requests() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

func writeSecret(t *testing.T, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var message = alerts.Message{Version: 1, Cluster: "main", Node: "n2", Kind: alerts.KindFailover, Severity: alerts.Critical,
	Status: alerts.Firing, Summary: "failover: n2 is the new primary (n1 lost the leader key)", Details: "promotion: won the election",
	Time: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Key: "failover/main/n2"}

// The body is the documented JSON shape (docs/ALERTS.md), headers and
// secret headers (from their file) go along.
func TestWebhookPostsTheDocumentedJSON(t *testing.T) {
	r := startReceiver(t, nil)
	hook := alerts.NewWebhook(alerts.WebhookOptions{URL: r.srv.URL + "/hook", Headers: map[string]string{"X-Team": "dba"},
		SecretHeaders: map[string]string{"Authorization": writeSecret(t, "Bearer tok-5f4dcc3b5aa765d6")}})
	if err := hook.Send(context.Background(), message); err != nil {
		t.Fatalf("send: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.requests()[0], &doc); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, " "); got != "cluster details key kind node severity status summary time version" {
		t.Fatalf("fields %s", got)
	}
	want := map[string]any{"version": 1.0, "cluster": "main", "node": "n2", "kind": "failover", "severity": "critical", "status": "firing",
		"summary": message.Summary, "time": "2026-11-23T10:00:00Z", "key": "failover/main/n2"}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	r.mu.Lock()
	h := r.headers[0]
	r.mu.Unlock()
	if h.Get("Content-Type") != "application/json" || h.Get("X-Team") != "dba" || h.Get("Authorization") != "Bearer tok-5f4dcc3b5aa765d6" {
		t.Errorf("headers %v", h)
	}
	if hook.Name() != "webhook "+r.srv.URL {
		t.Errorf("name %q", hook.Name())
	}
	secrets, err := hook.Secrets()
	if err != nil || len(secrets) != 1 || secrets[0] != "Bearer tok-5f4dcc3b5aa765d6" {
		t.Errorf("secrets %v, %v", secrets, err)
	}
}

// Through a notifier: a receiver that answers 503 is retried until it
// takes the alert; one that answers 400 or redirects is not retried.
func TestWebhookDeliveryRetriesWhatRetryingCanFix(t *testing.T) {
	cases := []struct {
		name     string
		status   func(int) int
		requests int
		stats    alerts.SinkStats
	}{
		{"503 twice, then 200: delivered on the third attempt", func(n int) int {
			if n < 3 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}, 3, alerts.SinkStats{Sent: 1, Failed: 2}},
		{"429 then 204: delivered", func(n int) int {
			if n == 1 {
				return http.StatusTooManyRequests
			}
			return http.StatusNoContent
		}, 2, alerts.SinkStats{Sent: 1, Failed: 1}},
		{"400: refused, not retried", func(int) int { return http.StatusBadRequest }, 1, alerts.SinkStats{Failed: 1, GivenUp: 1}},
		{"a redirect is not followed", func(int) int { return http.StatusFound }, 1, alerts.SinkStats{Failed: 1, GivenUp: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := startReceiver(t, tc.status)
			hook := alerts.NewWebhook(alerts.WebhookOptions{URL: r.srv.URL + "/hook", Timeout: 2 * time.Second})
			n := alerts.New(alerts.Options{Cluster: "main", Node: "n2", Sinks: []alerts.Sink{hook}, RetryFor: time.Minute,
				Backoff: alerts.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { n.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			n.Raise(alerts.Alert{Kind: alerts.KindFailover, Severity: alerts.Critical, Subject: "n2", Summary: "failover"})
			r.waitRequests(t, tc.requests)
			deadline := time.Now().Add(5 * time.Second)
			var got alerts.SinkStats
			for time.Now().Before(deadline) {
				if got = n.Stats().Sinks[hook.Name()]; got == tc.stats {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if got != tc.stats {
				t.Fatalf("stats %+v, want %+v", got, tc.stats)
			}
			if len(r.requests()) != tc.requests {
				t.Fatalf("%d requests, want %d", len(r.requests()), tc.requests)
			}
		})
	}
}

// A URL that is itself a credential comes from a file; neither the
// sink's name nor its errors repeat its path or query.
func TestWebhookURLFromAFileNeverShowsInErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	file := writeSecret(t, "http://"+addr+"/services/T000/B000/XXXXsecretpath?token=tok-0123456789")
	hook := alerts.NewWebhook(alerts.WebhookOptions{URLFile: file, Timeout: time.Second})
	if hook.Name() != "webhook http://"+addr {
		t.Fatalf("name %q", hook.Name())
	}
	err = hook.Send(context.Background(), message)
	if err == nil || alerts.IsPermanent(err) {
		t.Fatalf("send to a closed port: %v, want a retryable error", err)
	}
	for _, secret := range []string{"XXXXsecretpath", "tok-0123456789", "T000"} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error shows %q: %v", secret, err)
		}
	}
	logs := &testcluster.LockedBuffer{}
	n := alerts.New(alerts.Options{Cluster: "main", Node: "n2", Sinks: []alerts.Sink{hook}, RetryFor: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	n.Raise(alerts.Alert{Kind: alerts.KindFence, Severity: alerts.Critical, Subject: "n1", Summary: "fence"})
	deadline := time.Now().Add(5 * time.Second)
	for n.Stats().Sinks[hook.Name()].GivenUp == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if n.Stats().Sinks[hook.Name()].GivenUp != 1 {
		t.Fatalf("stats %+v, want the alert given up", n.Stats())
	}
	if out := logs.String(); strings.Contains(out, "XXXXsecretpath") || strings.Contains(out, "tok-0123456789") || !strings.Contains(out, "alert not sent") {
		t.Fatalf("log:\n%s", out)
	}
}
