package workflows

import (
	"slices"
	"strings"
)

// Routes is what routing knows of one repository's pools: their labels,
// and whether they take jobs. The server routes each queued job with it
// (a job goes to exactly one pool), and every pool of the repository
// carries it, so that a pool hands on the jobs that another fits better
// when the pools change. Version orders two sets: a pool takes a set only
// if it is newer than the one it has.
type Routes struct {
	// Version is when the set was made (Unix milliseconds of the server
	// that made it).
	Version int64 `json:"version"`
	// Pools, by name.
	Pools []RouteEntry `json:"pools"`
}

// RouteEntry is one pool as routing sees it.
type RouteEntry struct {
	Pool     string   `json:"pool"`
	Labels   []string `json:"labels"`
	Draining bool     `json:"draining,omitempty"`
}

// Route picks the pool a job with these labels goes to: among the pools
// that take jobs (not draining) and whose labels include all of the job's
// (case-insensitively), the one with the fewest extra labels, ties by
// name. It reports false when none fits.
func (r Routes) Route(labels []string) (string, bool) {
	candidates := make([][]string, len(r.Pools))
	for i, p := range r.Pools {
		if !p.Draining {
			candidates[i] = p.Labels
		}
	}
	if i := matchPool(labels, candidates); i >= 0 {
		return r.Pools[i].Pool, true
	}
	return "", false
}

// Keeper is the pool that keeps the repository's jobs no pool fits: the
// first by name that takes jobs, else the first; "" when there is none.
func (r Routes) Keeper() string {
	for _, p := range r.Pools {
		if !p.Draining {
			return p.Pool
		}
	}
	if len(r.Pools) > 0 {
		return r.Pools[0].Pool
	}
	return ""
}

// With returns the set with e in place of the pool of its name (added if
// new), sorted by name.
func (r Routes) With(e RouteEntry) Routes {
	out := Routes{Version: r.Version, Pools: slices.Clone(r.Pools)}
	i, found := slices.BinarySearchFunc(out.Pools, e.Pool, func(p RouteEntry, name string) int { return strings.Compare(p.Pool, name) })
	if found {
		out.Pools[i] = e
	} else {
		out.Pools = slices.Insert(out.Pools, i, e)
	}
	return out
}

// Without returns the set without the pool called name.
func (r Routes) Without(name string) Routes {
	return Routes{Version: r.Version, Pools: slices.DeleteFunc(slices.Clone(r.Pools), func(p RouteEntry) bool { return p.Pool == name })}
}

// Has reports whether the set has a pool called name.
func (r Routes) Has(name string) bool {
	return slices.ContainsFunc(r.Pools, func(p RouteEntry) bool { return p.Pool == name })
}

// Sorted returns the set with its pools sorted by name (and each once).
func (r Routes) Sorted() Routes {
	out := Routes{Version: r.Version}
	for _, p := range r.Pools {
		out = out.With(p)
	}
	return out
}
