package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/workflows"
)

// RunnerReports delivers an agent's reports of its runners to their pools
// (Intake does).
type RunnerReports interface {
	// ReportRunners returns once each pool (by workflow id) has its
	// reports.
	ReportRunners(ctx context.Context, agent string, reports map[string][]activities.RunnerReport) error
}

// Limits of a list of runner reports.
const (
	maxRunnerReports   = 1000
	maxReportErrorLen  = 1024
	maxReportRunnerLen = 64
)

var runnerNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

var outcomes = []string{activities.OutcomeExited, activities.OutcomeVanished, activities.OutcomeDeleted, activities.OutcomeFailed}

// check validates a report as an agent may send it.
func checkReport(r activities.PoolRunnerReport) error {
	if _, ok := workflows.ParsePoolWorkflowID(r.Pool); !ok {
		return fmt.Errorf("invalid pool %q", truncate(r.Pool, 128))
	}
	if !runnerNamePattern.MatchString(r.Runner) {
		return fmt.Errorf("invalid runner name %q", truncate(r.Runner, maxReportRunnerLen))
	}
	if r.Event != activities.ReportEnded {
		return fmt.Errorf("invalid event %q: want %q", truncate(r.Event, 32), activities.ReportEnded)
	}
	if !slices.Contains(outcomes, r.Outcome) {
		return fmt.Errorf("invalid outcome %q: want one of %v", truncate(r.Outcome, 32), outcomes)
	}
	if len(r.Error) > maxReportErrorLen || !workflows.Printable(r.Error) {
		return fmt.Errorf("error of runner %s: at most %d printable characters", r.Runner, maxReportErrorLen)
	}
	return nil
}

// reportRunners takes an agent's reports of its runners' ends and answers
// once their pools have them. The agent is who the server says the
// report is from: a pool takes it only for a runner of that agent.
func (h *handlers) reportRunners(w http.ResponseWriter, r *http.Request) {
	name, ok := h.agentName(w, r)
	if !ok {
		return
	}
	var list activities.RunnerReportList
	if !decodeJSON(w, r, &list, false) {
		return
	}
	if len(list.Reports) > maxRunnerReports {
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, fmt.Sprintf("at most %d reports at once", maxRunnerReports))
		return
	}
	byPool := map[string][]activities.RunnerReport{}
	for _, rep := range list.Reports {
		if err := checkReport(rep); err != nil {
			writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, err.Error())
			return
		}
		byPool[rep.Pool] = append(byPool[rep.Pool], rep.RunnerReport)
	}
	if h.cfg.RunnerReports == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, ProblemUnavailable, "this server takes no runner reports")
		return
	}
	if err := h.cfg.RunnerReports.ReportRunners(r.Context(), name, byPool); err != nil {
		h.backendError(w, r, "runner reports of agent "+name, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(list.Reports)})
}
