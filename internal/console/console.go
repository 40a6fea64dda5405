// Package console is the operator's web console: static HTML, CSS and
// JavaScript, embedded in the binary and served by every agent at / and
// /console/. The page reads and acts only through the REST API of the
// agent that served it (/api/v1/, a bearer token kept in the tab's
// sessionStorage), so it needs no cookie and no server-side state.
//
// It must never load anything from outside the agent: the
// Content-Security-Policy below allows only the agent's own origin, and
// the assets use no inline script or style. It never builds HTML from
// data (the scripts set textContent).
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// policy lets the page load its own scripts, styles and API answers and
// nothing else: no inline script, no other origin, no framing.
const policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console: / is the page, /console/NAME its assets.
func Handler() http.Handler {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := "index.html"
		if r.URL.Path != "/" {
			rest, ok := strings.CutPrefix(r.URL.Path, "/console/")
			if !ok || rest == "" || rest != path.Clean(rest) || strings.HasPrefix(rest, ".") {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Type", contentType(name))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}
