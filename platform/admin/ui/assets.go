package ui

import (
	"embed"
	"net/http"
	"path"
	"strings"
)

// The embedded assets: the style sheet, app.js (times in the browser's
// zone, selection helpers, error messages; no inline script anywhere)
// and htmx (assets/htmx.VERSION records its version, source and
// licence).
//
//go:embed assets/app.css assets/app.js assets/htmx.min.js assets/icon.svg
var assetFS embed.FS

// serveAsset serves an embedded asset, cached for an hour.
func serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
	h := w.Header()
	h.Set("Content-Type", types[path.Ext(name)])
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}
