package main

import (
	"slices"
	"time"

	historypb "go.temporal.io/api/history/v1"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/tests/githubsim"
)

// Phases is where the time of a runner's slot goes, in milliseconds
// (medians over the runners): from its workflow's start to its activity's
// start on the agent (Dispatch), to its job's start (ToJob: the JIT
// config, the instance, the runner taking the job), from its job's end to
// its activity's end (ToEnd: the exit seen, the instance removed, the end
// reported), and from a runner's end to the start of the runner that
// takes its slot (Refill: the report, the pool's turn, the start).
type Phases struct {
	DispatchMs float64 `json:"dispatchMs"`
	ToJobMs    float64 `json:"toJobMs"`
	ToEndMs    float64 `json:"toEndMs"`
	RefillMs   float64 `json:"refillMs"`
}

// runnerTimes are the times of one runner's workflow.
type runnerTimes struct {
	repo, name                   string
	started, activity, ended     time.Time
	haveActivity, haveActivityOK bool
}

// runnerTimesOf reads a RunnerWorkflow's history.
func runnerTimesOf(id string, h []*historypb.HistoryEvent) runnerTimes {
	rt := runnerTimes{repo: runnerRepo(id), name: id[lastSlash(id)+1:]}
	scheduled := map[int64]bool{}
	for _, e := range h {
		switch {
		case e.GetWorkflowExecutionStartedEventAttributes() != nil:
			rt.started = e.EventTime.AsTime()
		case e.GetActivityTaskScheduledEventAttributes() != nil:
			scheduled[e.EventId] = e.GetActivityTaskScheduledEventAttributes().ActivityType.GetName() == activities.RunRunnerName
		case e.GetActivityTaskStartedEventAttributes() != nil && scheduled[e.GetActivityTaskStartedEventAttributes().ScheduledEventId]:
			rt.activity, rt.haveActivity = e.EventTime.AsTime(), true
		case e.GetActivityTaskCompletedEventAttributes() != nil && scheduled[e.GetActivityTaskCompletedEventAttributes().ScheduledEventId]:
			rt.ended, rt.haveActivityOK = e.EventTime.AsTime(), true
		}
	}
	return rt
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// phases computes the medians of the runners' phases, with the jobs the
// simulator ran on them.
func phases(runners []runnerTimes, jobs []githubsim.Job, maxRunners int) Phases {
	byRunner := map[string]githubsim.Job{}
	for _, j := range jobs {
		if j.RunnerName != "" {
			byRunner[j.RunnerName] = j
		}
	}
	var dispatch, toJob, toEnd []float64
	starts, ends := map[string][]time.Time{}, map[string][]time.Time{}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, r := range runners {
		if !r.haveActivity || !r.haveActivityOK {
			continue
		}
		dispatch = append(dispatch, ms(r.activity.Sub(r.started)))
		if j, ok := byRunner[r.name]; ok && j.StartedAt != nil && j.CompletedAt != nil {
			toJob = append(toJob, ms(j.StartedAt.Sub(r.activity)))
			toEnd = append(toEnd, ms(r.ended.Sub(*j.CompletedAt)))
		}
		starts[r.repo] = append(starts[r.repo], r.started)
		ends[r.repo] = append(ends[r.repo], r.ended)
	}
	var refill []float64
	for repo, s := range starts {
		e := ends[repo]
		slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
		slices.SortFunc(e, func(a, b time.Time) int { return a.Compare(b) })
		for k := maxRunners; k < len(s); k++ {
			refill = append(refill, ms(s[k].Sub(e[k-maxRunners])))
		}
	}
	return Phases{DispatchMs: quantiles(dispatch).P50, ToJobMs: quantiles(toJob).P50, ToEndMs: quantiles(toEnd).P50,
		RefillMs: quantiles(refill).P50}
}
