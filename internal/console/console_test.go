package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestThePageAndItsAssetsAreServedUnderAStrictPolicy(t *testing.T) {
	for _, tc := range []struct{ path, typ, has string }{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/console/app.js">`},
		{"/console/app.js", "text/javascript; charset=utf-8", "import"},
		{"/console/app.css", "text/css; charset=utf-8", ".member"},
	} {
		w := get(t, http.MethodGet, tc.path)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, w.Code)
		}
		if got := w.Header().Get("Content-Type"); got != tc.typ {
			t.Fatalf("GET %s: Content-Type %q, want %q", tc.path, got, tc.typ)
		}
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Fatalf("GET %s: the policy %q lacks %q", tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Fatalf("GET %s: the policy allows unsafe sources: %q", tc.path, csp)
		}
		if !strings.Contains(w.Body.String(), tc.has) {
			t.Fatalf("GET %s: the body lacks %q", tc.path, tc.has)
		}
	}
}

func TestUnknownPathsAndOtherMethodsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/console/", http.StatusNotFound},
		{http.MethodGet, "/console/nosuch.js", http.StatusNotFound},
		{http.MethodGet, "/console/../console.go", http.StatusNotFound},
		{http.MethodGet, "/console/./app.js", http.StatusNotFound},
		{http.MethodGet, "/elsewhere", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
	} {
		if w := get(t, tc.method, tc.path); w.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
	if w := get(t, http.MethodHead, "/console/app.js"); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD /console/app.js: %d with %d bytes, want 200 and no body", w.Code, w.Body.Len())
	}
}

// The console must load nothing from outside the agent and never build
// HTML from data.
func TestAssetsReferNothingOutsideTheAgentAndParseNoHTML(t *testing.T) {
	outside := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	unsafe := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if m := outside.FindString(line); m != "" && !strings.Contains(line, "http://www.w3.org/2000/svg") {
				t.Errorf("%s refers to %s outside the agent: %s", p, m, strings.TrimSpace(line))
			}
			if m := unsafe.FindString(line); m != "" {
				t.Errorf("%s uses %s: %s", p, m, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
