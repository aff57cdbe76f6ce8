package github

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// etagTransport makes GETs conditional: it remembers the last 200 answer
// of each URL with its ETag and sends If-None-Match; GitHub's 304, which
// does not count against the rate limit, is answered from memory. Polling
// an unchanged resource is then free.
type etagTransport struct {
	base  http.RoundTripper
	mu    sync.Mutex
	byURL map[string]*cachedAnswer
}

type cachedAnswer struct {
	etag   string
	header http.Header
	body   []byte
}

// Bounds of the cache: entries and the body size of one.
const (
	maxETagEntries = 1024
	maxETagBody    = 4 << 20
)

func newETagTransport(base http.RoundTripper) *etagTransport {
	return &etagTransport{base: base, byURL: map[string]*cachedAnswer{}}
}

func (t *etagTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || r.Header.Get("If-None-Match") != "" {
		return t.base.RoundTrip(r)
	}
	key := r.URL.String()
	t.mu.Lock()
	c := t.byURL[key]
	t.mu.Unlock()
	if c != nil {
		r = r.Clone(r.Context())
		r.Header.Set("If-None-Match", c.etag)
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && c != nil:
		resp.Body.Close()
		h := c.header.Clone()
		for k, v := range resp.Header { // fresh rate-limit headers and the like
			h[k] = v
		}
		return &http.Response{Status: "200 OK", StatusCode: http.StatusOK, Proto: resp.Proto, ProtoMajor: resp.ProtoMajor,
			ProtoMinor: resp.ProtoMinor, Header: h, Body: io.NopCloser(bytes.NewReader(c.body)),
			ContentLength: int64(len(c.body)), Request: r}, nil
	case resp.StatusCode == http.StatusOK && resp.Header.Get("ETag") != "":
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxETagBody+1))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if len(body) <= maxETagBody {
			t.mu.Lock()
			if len(t.byURL) >= maxETagEntries {
				t.byURL = map[string]*cachedAnswer{}
			}
			t.byURL[key] = &cachedAnswer{etag: resp.Header.Get("ETag"), header: resp.Header.Clone(), body: body}
			t.mu.Unlock()
		}
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return resp, nil
}
