package workflows

import "strings"

// LabelsMatch reports whether every label a job asks for is among the
// pool's, case-insensitively, as GitHub matches runs-on.
func LabelsMatch(job, pool []string) bool {
	for _, j := range job {
		if !containsFold(pool, j) {
			return false
		}
	}
	return true
}

// extraLabels counts the pool's labels that the job does not ask for.
func extraLabels(job, pool []string) int {
	n := 0
	for i, p := range pool {
		if !containsFold(job, p) && !containsFold(pool[:i], p) {
			n++
		}
	}
	return n
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

// matchPool picks the pool a job with these labels goes to: among the
// candidates whose labels include all of the job's, the one with the
// fewest extra labels; candidates come by name, so a tie goes to the first
// name. It returns -1 when none fits.
func matchPool(job []string, candidates [][]string) int {
	best, bestExtra := -1, 0
	for i, labels := range candidates {
		if labels == nil || !LabelsMatch(job, labels) {
			continue
		}
		if extra := extraLabels(job, labels); best < 0 || extra < bestExtra {
			best, bestExtra = i, extra
		}
	}
	return best
}
