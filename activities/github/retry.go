package github

import (
	"net/http"
	"time"
)

// retryTransport tries a GET again, twice at most and briefly, when GitHub
// answers 500, 502, 503 or 504 or the connection fails. A GET changes
// nothing, and one activity often makes many of them (a reconciliation
// lists every active run's jobs): without this, one transient error in
// any of them failed the whole look, and the look is tried again only
// whole. What still fails after the retries goes to the activity's retry
// policy, as before.
type retryTransport struct {
	base http.RoundTripper
	// waits between the attempts.
	waits []time.Duration
}

func newRetryTransport(base http.RoundTripper) *retryTransport {
	return &retryTransport{base: base, waits: []time.Duration{100 * time.Millisecond, 400 * time.Millisecond}}
}

func (t *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if r.Method != http.MethodGet {
		return resp, err
	}
	for _, wait := range t.waits {
		if err == nil && !transient(resp.StatusCode) {
			return resp, nil
		}
		if err == nil {
			resp.Body.Close()
		}
		select {
		case <-r.Context().Done():
			return nil, r.Context().Err()
		case <-time.After(wait):
		}
		resp, err = t.base.RoundTrip(r)
	}
	return resp, err
}

func transient(status int) bool {
	switch status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
