package github

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// etagServer answers each URL with a fixed ETag, 304 to a request that
// names it, and counts the full answers (those GitHub counts).
type etagServer struct{ full, notModified atomic.Int64 }

func (s *etagServer) RoundTrip(r *http.Request) (*http.Response, error) {
	tag := `"` + r.URL.Path + `"`
	if r.Header.Get("If-None-Match") == tag {
		s.notModified.Add(1)
		return &http.Response{StatusCode: http.StatusNotModified, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	}
	s.full.Add(1)
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Etag": {tag}},
		Body: io.NopCloser(strings.NewReader(`{"total_count":0,"workflow_runs":[]}`)), Request: r}, nil
}

func get(t *testing.T, rt http.RoundTripper, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return string(b)
}

// TestPollingThousandsOfRepositoriesInTurnStaysFree: an agent that
// looks at the runs of 2,000 repositories in four statuses (8,000 URLs)
// finds each answer kept when its turn comes again: the second round is
// all 304, free of the rate limit, with the same bodies.
func TestPollingThousandsOfRepositoriesInTurnStaysFree(t *testing.T) {
	srv := &etagServer{}
	rt := newETagTransport(srv)
	urls := make([]string, 0, 8000)
	for i := range 2000 {
		for _, st := range []string{"queued", "in_progress", "pending", "waiting"} {
			urls = append(urls, fmt.Sprintf("https://api.github.com/repos/o/r%d/actions/runs?status=%s", i, st))
		}
	}
	for _, u := range urls {
		get(t, rt, u)
	}
	require.EqualValues(t, 8000, srv.full.Load())
	for _, u := range urls {
		assert.Equal(t, `{"total_count":0,"workflow_runs":[]}`, get(t, rt, u))
	}
	assert.EqualValues(t, 8000, srv.full.Load(), "no full answer the second time round")
	assert.EqualValues(t, 8000, srv.notModified.Load())
}

// TestTheETagCacheForgetsWhatWasUsedLongestAgo: past its byte limit the
// cache forgets the answers used longest ago, and keeps those just used.
func TestTheETagCacheForgetsWhatWasUsedLongestAgo(t *testing.T) {
	srv := &etagServer{}
	rt := newETagTransport(srv)
	get(t, rt, "https://api.github.com/a")
	one := rt.bytes
	rt.limit = 3 * one
	get(t, rt, "https://api.github.com/b")
	get(t, rt, "https://api.github.com/c")
	get(t, rt, "https://api.github.com/a") // used again: kept
	get(t, rt, "https://api.github.com/d") // b goes
	assert.LessOrEqual(t, rt.bytes, rt.limit)
	full := srv.full.Load()
	get(t, rt, "https://api.github.com/a")
	assert.Equal(t, full, srv.full.Load(), "a, used last but one, was kept")
	get(t, rt, "https://api.github.com/b")
	assert.Equal(t, full+1, srv.full.Load(), "b, used longest ago, was forgotten")
}
