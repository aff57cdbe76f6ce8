package tests

import (
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/runners"
	"github.com/garo-run/garo/api"
)

// dashboardQueries maps each metric that deploy/grafana/garo.json queries
// to the title of a panel that queries it.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../deploy/grafana/garo.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &d))
	metric := regexp.MustCompile(`\b((?:garo|process|temporal)_[a-z_]+)\b`)
	out := map[string]string{}
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, "panel %q queries nothing", p.Title)
		for _, target := range p.Targets {
			for _, m := range metric.FindAllString(target.Expr, -1) {
				out[m] = p.Title
			}
		}
	}
	return out
}

// assertDashboardTemporalMetrics: each Temporal SDK metric the dashboard
// queries is in scraped (the /metrics of a server and an agent at work),
// the SDK creating its metrics only once it uses them.
func assertDashboardTemporalMetrics(t *testing.T, scraped string) {
	t.Helper()
	n := 0
	for m, title := range dashboardQueries(t) {
		if strings.HasPrefix(m, "temporal_") {
			n++
			assert.Contains(t, scraped, "\n"+m+"{", "panel %q queries %s, which the server and agent do not export", title, m)
		}
	}
	assert.GreaterOrEqual(t, n, 3, "the dashboard charts the Temporal SDK's metrics")
}

// TestEveryMetricTheDashboardQueriesExists: each Garo and process metric
// that deploy/grafana/garo.json queries is one the server or the agent
// exports (a histogram's _bucket, _sum and _count included); the Temporal
// SDK's are checked on a running server and agent, by
// TestNoSecretIsFoundInHistoriesLogsOrMetrics.
func TestEveryMetricTheDashboardQueriesExists(t *testing.T) {
	queries := dashboardQueries(t)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), api.NewPoolMetrics(nil, log))
	api.NewWebhook(nil, nil, log, reg)
	_, err := github.New(github.Config{URL: "http://127.0.0.1:1", Token: "x", Registerer: reg})
	require.NoError(t, err)
	runners.NewReapedCounter(reg)
	runners.NewFailureCounter(reg)
	exported := map[string]bool{}
	descs := make(chan *prometheus.Desc, 100)
	go func() {
		for _, c := range []prometheus.Collector{reg} {
			c.Describe(descs)
		}
		close(descs)
	}()
	name := regexp.MustCompile(`fqName: "([^"]+)"`)
	for desc := range descs {
		if m := name.FindStringSubmatch(desc.String()); m != nil {
			exported[m[1]] = true
		}
	}
	queried := 0
	for m, title := range queries {
		if strings.HasPrefix(m, "temporal_") {
			continue
		}
		queried++
		base := m
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m, suffix); ok && exported[b] {
				base = b
			}
		}
		assert.True(t, exported[base], "panel %q queries %s, which nothing exports", title, m)
	}
	assert.Greater(t, queried, 8)
}
