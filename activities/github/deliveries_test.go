package github

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gh "github.com/google/go-github/v60/github"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/tests/githubsim"
)

// flakyReceiver answers 503 while down, and counts the workflow_job
// deliveries it took by GUID.
type flakyReceiver struct {
	down atomic.Bool
	mu   sync.Mutex
	took map[string]int
}

func (f *flakyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("X-GitHub-Event") == "workflow_job" {
		f.mu.Lock()
		f.took[r.Header.Get("X-GitHub-Delivery")]++
		f.mu.Unlock()
	}
	w.WriteHeader(http.StatusAccepted)
}

func (f *flakyReceiver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.took)
}

func newFlaky(t *testing.T) (*flakyReceiver, string) {
	f := &flakyReceiver{took: map[string]int{}}
	f.down.Store(true)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// TestRedeliverFailedSendsEachFailedEventOnce: a repository hook refused
// three workflow_job events (a ping and an older event do not count);
// asked to redeliver what failed since, GitHub sends each of the three
// again once, and a second pass asks for nothing more.
func TestRedeliverFailedSendsEachFailedEventOnce(t *testing.T) {
	sim, url := newSim(t)
	c := newClient(t, url)
	ctx := context.Background()
	recv, recvURL := newFlaky(t)
	hook, _, err := c.gh.Repositories.CreateHook(ctx, repo.Owner, repo.Name, &gh.Hook{Events: []string{"workflow_job"},
		Config: &gh.HookConfig{URL: gh.String(recvURL), ContentType: gh.String("json")}})
	require.NoError(t, err)
	sim.Enqueue("octo", "app", nil, 0, 1, "before")
	require.Eventually(t, sim.WebhooksIdle, 5*time.Second, 10*time.Millisecond)
	time.Sleep(1100 * time.Millisecond) // delivered_at has seconds
	since := time.Now().Truncate(time.Second)
	sim.Enqueue("octo", "app", nil, 0, 3, "x")
	require.Eventually(t, sim.WebhooksIdle, 5*time.Second, 10*time.Millisecond)

	recv.down.Store(false)
	n, err := c.RedeliverFailed(ctx, repo, since)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	require.Eventually(t, func() bool { return recv.count() == 3 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, sim.WebhooksIdle, 5*time.Second, 10*time.Millisecond)
	n, err = c.RedeliverFailed(ctx, repo, since)
	require.NoError(t, err)
	assert.Zero(t, n, "what was delivered is not asked for again")
	list, _, err := c.gh.Repositories.ListHookDeliveries(ctx, repo.Owner, repo.Name, hook.GetID(), nil)
	require.NoError(t, err)
	assert.Len(t, list, 8, "a ping, four events, three redeliveries")
}

// TestRedeliverFailedThroughTheAppsWebhook: with App credentials, the
// App's own webhook's failed deliveries of the repository's events are
// redelivered (the App's JWT lists them), and another repository's are
// left alone.
func TestRedeliverFailedThroughTheAppsWebhook(t *testing.T) {
	recv, recvURL := newFlaky(t)
	sim := githubsim.New(githubsim.Options{Seed: 1, WebhookURL: recvURL, WebhookSecret: "s"})
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	c, err := New(Config{URL: srv.URL, AppID: githubsim.AppID, InstallationID: githubsim.InstallationID,
		PrivateKeyPEM: pemKey, Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	since := time.Now().Add(-time.Second)
	sim.Enqueue("octo", "app", nil, 0, 2, "ours")
	sim.Enqueue("octo", "other", nil, 0, 1, "theirs")
	require.Eventually(t, sim.WebhooksIdle, 5*time.Second, 10*time.Millisecond)
	recv.down.Store(false)
	n, err := c.RedeliverFailed(context.Background(), repo, since)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the repository's two events only")
	require.Eventually(t, func() bool { return recv.count() == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Positive(t, c.RequestCount("GET /app/hook/deliveries", 200))
}
