package github

import (
	"bytes"
	"container/list"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// etagTransport makes GETs conditional: it remembers the last 200 answer
// of each URL with its ETag and sends If-None-Match; GitHub's 304, which
// does not count against the rate limit, is answered from memory. Polling
// an unchanged resource is then free. The cache keeps the answers used
// last, within maxETagBytes: an agent of thousands of repositories polls
// thousands of URLs in turn, and must find each one's answer when it comes
// round again.
type etagTransport struct {
	base  http.RoundTripper
	mu    sync.Mutex
	byURL map[string]*list.Element // of *cachedAnswer
	lru   *list.List               // most recently used first
	bytes int
	limit int
}

type cachedAnswer struct {
	url    string
	etag   string
	header http.Header
	body   []byte
}

// size approximates the memory an answer holds.
func (c *cachedAnswer) size() int {
	n := len(c.url) + len(c.etag) + len(c.body) + 64
	for k, v := range c.header {
		n += len(k)
		for _, s := range v {
			n += len(s)
		}
	}
	return n
}

// Bounds of the cache: all answers, and the body of one.
const (
	maxETagBytes = 64 << 20
	maxETagBody  = 4 << 20
)

func newETagTransport(base http.RoundTripper) *etagTransport {
	return &etagTransport{base: base, byURL: map[string]*list.Element{}, lru: list.New(), limit: maxETagBytes}
}

// get returns the answer kept for url, now the most recently used.
func (t *etagTransport) get(url string) *cachedAnswer {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byURL[url]
	if e == nil {
		return nil
	}
	t.lru.MoveToFront(e)
	return e.Value.(*cachedAnswer)
}

// put keeps c, in place of url's earlier answer, and forgets the answers
// used longest ago beyond the limit.
func (t *etagTransport) put(c *cachedAnswer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.byURL[c.url]; e != nil {
		t.bytes -= e.Value.(*cachedAnswer).size()
		t.lru.Remove(e)
	}
	t.byURL[c.url] = t.lru.PushFront(c)
	t.bytes += c.size()
	for t.bytes > t.limit && t.lru.Len() > 1 {
		old := t.lru.Back()
		a := old.Value.(*cachedAnswer)
		t.lru.Remove(old)
		delete(t.byURL, a.url)
		t.bytes -= a.size()
	}
}

func (t *etagTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || r.Header.Get("If-None-Match") != "" {
		return t.base.RoundTrip(r)
	}
	key := r.URL.String()
	c := t.get(key)
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
			t.put(&cachedAnswer{url: key, etag: resp.Header.Get("ETag"), header: resp.Header.Clone(), body: body})
		}
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return resp, nil
}
