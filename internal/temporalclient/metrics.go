package temporalclient

import (
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// MetricsInterval is how often the SDK's metrics reach the registry.
const MetricsInterval = 5 * time.Second

// Metrics exports the Temporal SDK's own metrics to reg under their
// Prometheus names (temporal_request_total,
// temporal_workflow_task_schedule_to_start_latency_seconds, ...), the
// names Temporal's dashboards use, refreshed every MetricsInterval. Set
// the handler as client.Options.MetricsHandler; Close flushes and stops
// it.
func Metrics(reg prometheus.Registerer, log *slog.Logger) (client.MetricsHandler, io.Closer) {
	var once sync.Map
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       reg,
		DefaultTimerType: tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60,
			300},
		OnRegisterError: func(err error) {
			// A metric the SDK emits with another set of tags than the
			// first time cannot share its name in Prometheus: it is
			// dropped, and said once.
			if _, seen := once.LoadOrStore(err.Error(), true); !seen {
				log.Debug("Temporal SDK metric not exported", "error", err)
			}
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, MetricsInterval)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), closer
}
