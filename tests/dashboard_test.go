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

// TestEveryMetricTheDashboardQueriesExists: each metric that
// deploy/grafana/garo.json queries is one the server or the agent
// exports (a histogram's _bucket, _sum and _count included).
func TestEveryMetricTheDashboardQueriesExists(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/garo.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &d))

	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), api.NewPoolMetrics(nil, log))
	api.NewWebhook(nil, nil, log, reg)
	_, err = github.New(github.Config{URL: "http://127.0.0.1:1", Token: "x", Registerer: reg})
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
	metric := regexp.MustCompile(`\b(garo_[a-z_]+|process_[a-z_]+)\b`)
	queried := 0
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, "panel %q queries nothing", p.Title)
		for _, target := range p.Targets {
			for _, m := range metric.FindAllString(target.Expr, -1) {
				queried++
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && exported[b] {
						base = b
					}
				}
				assert.True(t, exported[base], "panel %q queries %s, which nothing exports", p.Title, m)
			}
		}
	}
	assert.Greater(t, queried, 8)
}
