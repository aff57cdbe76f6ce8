package tests

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func deliver(t *testing.T, url, event, secret string, body []byte) (int, string) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	req, err := http.NewRequest("POST", url+"/webhooks/github", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", "e2e-1")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWebhookAgainstTemporal: the server answers GitHub's deliveries through
// real Temporal: a ping, a job for a repository without a pool (the signal
// finds no workflow), a forged delivery; each is counted in /metrics.
func TestWebhookAgainstTemporal(t *testing.T) {
	t.Parallel()
	url := startServer(t, "e2e-stop")
	code, body := deliver(t, url, "ping", webhookSecret, []byte(`{"zen":"hi","hook_id":1}`))
	assert.Equal(t, http.StatusOK, code, body)
	job := []byte(`{"action":"queued","workflow_job":{"id":1,"run_id":2,"labels":["self-hosted"]},"repository":{"full_name":"nobody/nothing"}}`)
	code, body = deliver(t, url, "workflow_job", webhookSecret, job)
	assert.Equal(t, http.StatusAccepted, code, body)
	assert.Contains(t, body, "no runner pool for nobody/nothing")
	code, _ = deliver(t, url, "workflow_job", "forged", job)
	assert.Equal(t, http.StatusUnauthorized, code)

	req, err := http.NewRequest("GET", url+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	metrics := string(b)
	for _, want := range []string{
		`garo_webhook_deliveries_total{event="ping",outcome="ok"} 1`,
		`garo_webhook_deliveries_total{event="workflow_job",outcome="no_pool"} 1`,
		`garo_webhook_deliveries_total{event="workflow_job",outcome="bad_signature"} 1`,
	} {
		assert.True(t, strings.Contains(metrics, want), "metrics lack %s", want)
	}
	resp, err = http.Get(url + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "metrics need a token")
}
