package workflows

import (
	"slices"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// WaitAccuracy is the relative accuracy of the queue-wait quantiles: a
// p50 or p95 is within 5 % of the true one. The maximum is exact.
const WaitAccuracy = 0.05

// Queue waits are kept between these bounds, in seconds: shorter ones
// count as none, longer ones as a week (GitHub cancels a job sooner).
const (
	minWait = 0.001
	maxWait = 7 * 24 * 3600
)

// waitMapping maps a wait to its bin: DDSketch's logarithmic mapping.
var waitMapping = func() mapping.IndexMapping {
	m, err := mapping.NewLogarithmicMapping(WaitAccuracy)
	if err != nil {
		panic(err) // a constant accuracy: it cannot fail
	}
	return m
}()

// WaitHistogram is a sketch of queue waits (DDSketch, relative accuracy
// WaitAccuracy) in a form fit for a workflow's state: the count of waits
// under a millisecond, then [bin, count] pairs by bin, and the exact
// maximum.
type WaitHistogram struct {
	Count int      `json:"count,omitempty"`
	Zero  int      `json:"zero,omitempty"`
	Bins  [][2]int `json:"bins,omitempty"`
	Max   float64  `json:"max,omitempty"`
}

// IsZero reports whether no wait was counted.
func (h WaitHistogram) IsZero() bool { return h.Count == 0 }

// Add counts one wait of seconds.
func (h *WaitHistogram) Add(seconds float64) {
	seconds = min(max(seconds, 0), maxWait)
	h.Count++
	h.Max = max(h.Max, seconds)
	if seconds < minWait {
		h.Zero++
		return
	}
	h.addBin(waitMapping.Index(seconds), 1)
}

func (h *WaitHistogram) addBin(bin, n int) {
	i, found := slices.BinarySearchFunc(h.Bins, bin, func(b [2]int, k int) int { return b[0] - k })
	if found {
		h.Bins[i][1] += n
		return
	}
	h.Bins = slices.Insert(h.Bins, i, [2]int{bin, n})
}

// Merge adds o's waits to h.
func (h *WaitHistogram) Merge(o WaitHistogram) {
	h.Count += o.Count
	h.Zero += o.Zero
	h.Max = max(h.Max, o.Max)
	for _, b := range o.Bins {
		h.addBin(b[0], b[1])
	}
}

// Quantile is the wait at quantile q (0 to 1), in seconds, within
// WaitAccuracy; 0 with no waits. The rank is q·(count−1), as DDSketch
// takes it: p50 of 4 waits is the 2nd shortest.
func (h WaitHistogram) Quantile(q float64) float64 { return h.Quantiles(q)[0] }

// Quantiles are the waits at each of qs, as Quantile, from one sketch.
func (h WaitHistogram) Quantiles(qs ...float64) []float64 {
	out := make([]float64, len(qs))
	if h.Count == 0 {
		return out
	}
	pos := store.NewSparseStore()
	for _, b := range h.Bins {
		pos.AddWithCount(b[0], float64(b[1]))
	}
	s := ddsketch.NewDDSketch(waitMapping, pos, store.NewSparseStore())
	if h.Zero > 0 {
		_ = s.AddWithCount(0, float64(h.Zero)) // zero is always accepted
	}
	for i, q := range qs {
		if v, err := s.GetValueAtQuantile(q); err == nil {
			out[i] = min(v, h.Max)
		}
	}
	return out
}
