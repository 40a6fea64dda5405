package alerts

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// WebhookOptions configure the webhook receiver.
type WebhookOptions struct {
	// URL, or URLFile holding it (read at every send, so that it can
	// be replaced without a restart).
	URL, URLFile string
	// Headers are sent as they are; SecretHeaders name the file that
	// holds each header's value (read at every send).
	Headers, SecretHeaders map[string]string
	// TLS verifies an https receiver (nil: the system's roots).
	TLS     *tls.Config
	Timeout time.Duration
}

// Webhook posts each message as JSON (the Message shape) and takes any
// 2xx answer as delivered. Redirects are not followed: a header holding a
// credential must not go to another host.
type Webhook struct {
	o      WebhookOptions
	client *http.Client
	name   string
}

// NewWebhook prepares the receiver; Secrets checks that its files can be
// read.
func NewWebhook(o WebhookOptions) *Webhook {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = o.TLS
	w := &Webhook{o: o, client: &http.Client{Transport: tr, Timeout: o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	w.name = "webhook " + redactURL(o.URL)
	if o.URLFile != "" {
		w.name = "webhook " + o.URLFile
		if u, err := readSecret(o.URLFile); err == nil {
			w.name = "webhook " + redactURL(u)
		}
	}
	return w
}

// Name is "webhook SCHEME://HOST": no credential, path or query.
func (w *Webhook) Name() string { return w.name }

// Secrets reads the URL file and every secret header's file and returns
// their values (to scrub them from every text), or the first that cannot
// be read.
func (w *Webhook) Secrets() ([]string, error) {
	var out []string
	if w.o.URLFile != "" {
		u, err := readSecret(w.o.URLFile)
		if err != nil {
			return nil, err
		}
		if _, err := url.Parse(u); err != nil {
			return nil, fmt.Errorf("%s does not hold a URL", w.o.URLFile)
		}
		out = append(out, u)
	}
	for name, path := range w.o.SecretHeaders {
		v, err := readSecret(path)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Send posts m once.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	target := w.o.URL
	if w.o.URLFile != "" {
		u, err := readSecret(w.o.URLFile)
		if err != nil {
			return err
		}
		target = u
	}
	body, err := json.Marshal(m)
	if err != nil {
		return Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// The error quotes the URL: say only that it is not one.
		return Permanent(fmt.Errorf("%s: not a valid URL", w.name))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pgguard-alerts/1")
	for k, v := range w.o.Headers {
		req.Header.Set(k, v)
	}
	for k, path := range w.o.SecretHeaders {
		v, err := readSecret(path)
		if err != nil {
			return fmt.Errorf("header %s: %w", k, err)
		}
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// net/http quotes the whole URL, query and all: keep only the
		// cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", w.name, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("%s answered %s: %s", w.name, resp.Status, strings.TrimSpace(string(answer)))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooEarly,
		resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return err
	}
	return Permanent(err)
}

// readSecret reads a one-line secret file (a trailing newline is not part
// of it).
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%s holds more than one line", path)
	}
	return s, nil
}

// redactURL is a URL as logs may show it: scheme and host only.
func redactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "(a URL)"
	}
	return u.Scheme + "://" + u.Host
}
