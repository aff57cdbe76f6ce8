package githubsim

import (
	"math/rand"
	"net/http"
	"strings"
	"sync"
)

// Faults is what PUT /_sim/faults sets: deterministic (seeded) misbehaviour
// of webhooks and of chosen REST routes.
type Faults struct {
	Seed     int64         `json:"seed"`
	Webhooks WebhookFaults `json:"webhooks"`
	Routes   []RouteFault  `json:"routes"`
}

// WebhookFaults misdeliver webhooks with the given probabilities.
type WebhookFaults struct {
	DropRate      float64 `json:"dropRate"`
	DuplicateRate float64 `json:"duplicateRate"`
	ReorderRate   float64 `json:"reorderRate"`
	DelayMs       int64   `json:"delayMs"`
}

// Route fault kinds.
const (
	FaultError              = "error"
	FaultPrimaryRateLimit   = "primary-rate-limit"
	FaultSecondaryRateLimit = "secondary-rate-limit"
	FaultLatency            = "latency"
)

// RouteFault makes matching REST requests fail or slow down.
type RouteFault struct {
	// Method matches the HTTP method; empty matches any.
	Method string `json:"method"`
	// Path matches a prefix of the path, without /api/v3 (for example
	// "/repos/octo/app/actions/runners").
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Status of an error fault (default 500), or of a primary rate limit
	// (403, or 429).
	Status int `json:"status"`
	// Rate is the probability that a request is hit; default 1.
	Rate float64 `json:"rate"`
	// Count stops the fault after that many hits; 0 is unlimited.
	Count int `json:"count"`
	// LatencyMs of a latency fault.
	LatencyMs int64 `json:"latencyMs"`
	// RetryAfterSeconds of a secondary rate limit (default 1) or, for a
	// primary one, seconds until X-RateLimit-Reset (default 1).
	RetryAfterSeconds int64 `json:"retryAfterSeconds"`
	hits              int
}

type faults struct {
	mu  sync.Mutex
	cfg Faults
	rnd *rand.Rand
}

func newFaults(seed int64) *faults {
	return &faults{cfg: Faults{Seed: seed}, rnd: rand.New(rand.NewSource(seed))}
}

func (f *faults) set(cfg Faults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
	f.rnd = rand.New(rand.NewSource(cfg.Seed))
}

func (f *faults) get() Faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *faults) webhook() WebhookFaults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.Webhooks
}

// roll returns true with probability p, from the seeded source.
func (f *faults) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rnd.Float64() < p
}

// match returns the fault that hits this request, if any, and counts it.
func (f *faults) match(r *http.Request, path string) *RouteFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.cfg.Routes {
		rf := &f.cfg.Routes[i]
		if rf.Method != "" && !strings.EqualFold(rf.Method, r.Method) {
			continue
		}
		if !strings.HasPrefix(path, rf.Path) {
			continue
		}
		if rf.Count > 0 && rf.hits >= rf.Count {
			continue
		}
		rate := rf.Rate
		if rate == 0 {
			rate = 1
		}
		if rate < 1 && f.rnd.Float64() >= rate {
			continue
		}
		rf.hits++
		hit := *rf
		return &hit
	}
	return nil
}
