// Package github is Garo's GitHub client (go-github v60) and the
// activities built on it: JIT runner configs, registration tokens, runners
// and queued jobs of a repository. It authenticates as a GitHub App or with
// a token, speaks to github.com or GitHub Enterprise Server, turns GitHub's
// rate limits into retry delays Temporal honours, and counts every request.
package github

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"
	"github.com/prometheus/client_golang/prometheus"
)

// Config selects GitHub and how to authenticate. Credentials are read by
// the agent only and never leave it.
type Config struct {
	// URL is the base URL of a GitHub Enterprise Server (such as
	// https://ghe.example.com); empty means github.com.
	URL string
	// Token authenticates as a user or with a fine-grained token.
	Token string
	// AppID, InstallationID and PrivateKeyPEM authenticate as a GitHub
	// App installation, preferred over a token.
	AppID          int64
	InstallationID int64
	PrivateKeyPEM  []byte
	// Registerer receives garo_github_requests_total; nil registers none.
	Registerer prometheus.Registerer
	// Transport is the base transport (default http.DefaultTransport).
	Transport http.RoundTripper
}

// Client calls GitHub's REST API.
type Client struct {
	gh *gh.Client
	// app calls as the GitHub App itself (its JWT), for the App's own
	// routes such as its webhook's deliveries; nil with a token.
	app      *gh.Client
	requests *prometheus.CounterVec
	webURL   string
	// budget is the rate limit left, from GitHub's latest answer.
	budget *budget
	// queuedRuns are the jobs of the queued runs last listed.
	queuedRuns *runCache
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	base := cfg.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	left := &budget{}
	requests, err := registerMetrics(cfg.Registerer, left)
	if err != nil {
		return nil, err
	}
	// Requests are counted as they go out (a 304 is a request too, and so
	// is each attempt of a GET tried again); above that, GETs are made
	// conditional.
	counted := newETagTransport(newRetryTransport(&countingTransport{base: base, requests: requests, budget: left}))

	apiURL := "https://api.github.com"
	if cfg.URL != "" {
		apiURL = strings.TrimSuffix(cfg.URL, "/") + "/api/v3"
	}
	var httpClient, appClient *http.Client
	switch {
	case cfg.AppID != 0:
		if cfg.InstallationID == 0 || len(cfg.PrivateKeyPEM) == 0 {
			return nil, errors.New("GitHub App auth needs an app id, an installation id and a private key")
		}
		tr, err := ghinstallation.New(counted, cfg.AppID, cfg.InstallationID, cfg.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("GitHub App %d: %w", cfg.AppID, err)
		}
		tr.BaseURL = apiURL
		httpClient = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		atr, err := ghinstallation.NewAppsTransport(counted, cfg.AppID, cfg.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("GitHub App %d: %w", cfg.AppID, err)
		}
		atr.BaseURL = apiURL
		appClient = &http.Client{Transport: atr, Timeout: 30 * time.Second}
	case cfg.Token != "":
		httpClient = &http.Client{Transport: counted, Timeout: 30 * time.Second}
	default:
		return nil, errors.New("no GitHub credentials: a GitHub App or a token is needed")
	}
	c, err := newGitHub(httpClient, cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Token != "" && cfg.AppID == 0 {
		c = c.WithAuthToken(cfg.Token)
	}
	client := &Client{gh: c, requests: requests, webURL: "https://github.com", budget: left,
		queuedRuns: newRunCache()}
	if cfg.URL != "" {
		client.webURL = cfg.URL
	}
	if appClient != nil {
		if client.app, err = newGitHub(appClient, cfg.URL); err != nil {
			return nil, err
		}
	}
	return client, nil
}

// registerMetrics registers garo_github_requests_total (or finds it
// registered by another client) and garo_github_rate_limit_remaining of
// left on reg, when set.
func registerMetrics(reg prometheus.Registerer, left *budget) (*prometheus.CounterVec, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "garo_github_requests_total",
		Help: "Requests to GitHub's REST API by route and status (0: no answer).",
	}, []string{"route", "status"})
	if reg == nil {
		return requests, nil
	}
	if err := reg.Register(requests); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("register GitHub metrics: %w", err)
		}
		requests = are.ExistingCollector.(*prometheus.CounterVec)
	}
	remaining := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "garo_github_rate_limit_remaining",
		Help: "Requests left in GitHub's core rate limit, as its latest answer reported (-1: unknown).",
	}, func() float64 {
		if n, _, _, ok := left.state(); ok {
			return float64(n)
		}
		return -1
	})
	if err := reg.Register(remaining); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return nil, fmt.Errorf("register GitHub metrics: %w", err)
	}
	return requests, nil
}

// newGitHub is a go-github client over hc, of GitHub Enterprise Server at
// url when set.
func newGitHub(hc *http.Client, url string) (*gh.Client, error) {
	c := gh.NewClient(hc)
	if url == "" {
		return c, nil
	}
	u := strings.TrimSuffix(url, "/")
	c, err := c.WithEnterpriseURLs(u, u)
	if err != nil {
		return nil, fmt.Errorf("GitHub Enterprise URL %s: %w", url, err)
	}
	return c, nil
}

// RequestCount returns how many requests went to route with status; the
// count of GitHub calls per job is a headline figure of Garo.
func (c *Client) RequestCount(route string, status int) float64 {
	m := &dtoMetric{}
	if err := c.requests.WithLabelValues(route, strconv.Itoa(status)).Write(m.metric()); err != nil {
		return 0
	}
	return m.value()
}

// countingTransport counts each request by its route template and status,
// and reads the rate limit left from each answer.
type countingTransport struct {
	base     http.RoundTripper
	requests *prometheus.CounterVec
	budget   *budget
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	status := "0"
	if resp != nil {
		status = strconv.Itoa(resp.StatusCode)
		t.budget.observe(resp.Header)
	}
	t.requests.WithLabelValues(r.Method+" "+Route(r.URL.Path), status).Inc()
	return resp, err
}

var (
	reposPrefix = regexp.MustCompile(`^/repos/[^/]+/[^/]+`)
	numericPart = regexp.MustCompile(`/[0-9]+(/|$)`)
)

// Route turns a request path into its template, without owner, repository
// or ids, so that metrics stay bounded: /repos/o/r/actions/runners/12 is
// /repos/{owner}/{repo}/actions/runners/{id}.
func Route(path string) string {
	path = strings.TrimPrefix(path, "/api/v3")
	path = reposPrefix.ReplaceAllString(path, "/repos/{owner}/{repo}")
	for numericPart.MatchString(path) {
		path = numericPart.ReplaceAllString(path, "/{id}$1")
	}
	return path
}
