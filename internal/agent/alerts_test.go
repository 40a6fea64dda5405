package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/config"
	"github.com/pgguard/pgguard/internal/ha"
)

// The HA loop records history events and goes on: with alerts on and a
// receiver that never answers, thousands of records return at once (the
// intake drops what does not fit; nothing waits on the receiver).
func TestRecordNeverWaitsOnAlerts(t *testing.T) {
	stuck := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-stuck
	}))
	defer srv.Close()
	defer close(stuck)
	a := testAgent(&fakeInstance{}, &fakeStore{})
	a.cfg.Cluster = "main"
	a.cfg.Alerts = config.DefaultAlerts()
	a.cfg.Alerts.Webhook.URL = srv.URL
	a.cfg.Alerts.Webhook.Timeout = config.Duration(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.startAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	a.record(ctx, ha.Fence, "", "watchdog: no lease renewal for 2s", "ok")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the fence alert never reached the receiver")
	}
	done := make(chan struct{})
	go func() {
		for range 5000 {
			a.record(ctx, ha.Fence, "", "again", "ok")
			a.record(ctx, ha.EventDiskCritical, "", "0 B free", "observed")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("recording history waited on an alert receiver that does not answer")
	}
}

func TestAnUnreadableSecretFileStopsTheAgentNamingTheField(t *testing.T) {
	a := testAgent(&fakeInstance{}, &fakeStore{})
	a.cfg.Alerts = config.DefaultAlerts()
	a.cfg.Alerts.SMTP = config.SMTP{Host: "127.0.0.1", Port: 25, From: "a@b.c", To: []string{"d@e.f"}, Username: "u",
		PasswordFile: t.TempDir() + "/gone"}
	err := a.startAlerts(context.Background())
	if err == nil || !strings.Contains(err.Error(), "alerts.smtp.password_file") || !strings.Contains(err.Error(), "the agent's account must be able to read it") {
		t.Fatalf("start with a password file that is gone: %v", err)
	}
}
