package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestPortalIsServedWithoutATokenUnderAStrictPolicy: the page, its script
// and its style need no token, come with their types and a policy that
// keeps them to their own origin; anything else under /portal/ is 404.
func TestPortalIsServedWithoutATokenUnderAStrictPolicy(t *testing.T) {
	h := NewRouter(Config{Tokens: NewTokens(adminToken, nil, 0), Logger: slog.New(slog.DiscardHandler)})
	get := func(path string) *http.Response {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Result()
	}
	for path, typ := range map[string]string{"/portal/": "text/html", "/portal/portal.js": "text/javascript",
		"/portal/portal.css": "text/css", "/portal/index.html": "text/html"} {
		resp := get(path)
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), typ), "%s: %s", path, resp.Header.Get("Content-Type"))
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'", path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
	}
	resp := get("/portal")
	assert.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
	assert.Equal(t, "/portal/", resp.Header.Get("Location"))
	for _, path := range []string{"/portal/nothing.js", "/portal/..%2fportal.go", "/portal/%2e%2e"} {
		assert.Equal(t, http.StatusNotFound, get(path).StatusCode, path)
	}
}
