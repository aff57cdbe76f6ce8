package api

import (
	"embed"
	"io/fs"
	"net/http"
	"path"

	"github.com/go-chi/chi/v5"
)

// portalFiles are the portal's page, script and style: plain files, no
// build step, served by garo server at /portal/.
//
//go:embed portal
var portalFiles embed.FS

// portalCSP keeps the page to its own files and to the API of its origin.
const portalCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// servePortal serves GET /portal/ (the page) and /portal/{file}. The page
// needs no token: it asks for one and calls the API with it.
func servePortal(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "file")
	if name == "" {
		if r.URL.Path == "/portal" {
			http.Redirect(w, r, "/portal/", http.StatusMovedPermanently)
			return
		}
		name = "index.html"
	}
	b, err := fs.ReadFile(portalFiles, path.Join("portal", path.Clean("/" + name)[1:]))
	if err != nil {
		writeProblem(w, r, http.StatusNotFound, ProblemNotFound, "no such file")
		return
	}
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8"}
	w.Header().Set("Content-Type", types[path.Ext(name)])
	w.Header().Set("Content-Security-Policy", portalCSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
