package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/tests/githubsim"
)

// History is what the runs of one workflow type wrote.
type History struct {
	Runs       int     `json:"runs"`
	Events     int     `json:"events"`
	Bytes      int     `json:"bytes"`
	EventsPer  float64 `json:"eventsPerRun"`
	MaxEvents  int     `json:"maxEventsOfARun"`
	EventsJob  float64 `json:"eventsPerJob"`
	BytesPerJb float64 `json:"bytesPerJob"`
}

// billable maps the history events that Temporal Cloud bills as actions
// to their kind (an approximation from the history alone: heartbeats and
// queries are not in it).
var billable = map[enumspb.EventType]string{
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:                   "workflow started",
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:                  "signal",
	enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: "signal sent",
	enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:                        "activity attempt",
	enumspb.EVENT_TYPE_TIMER_STARTED:                                "timer",
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:           "update",
	enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:            "search attributes upsert",
	enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:                 "memo upsert",
	enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:     "child workflow",
}

// historyFigures reads every history of the namespace: events, bytes and
// billable actions per job, by workflow type; and when each runner's
// create activity started, for the webhook-to-create latency.
func historyFigures(ctx context.Context, s *stack, res *Result, logf func(string, ...any)) error {
	opts, err := s.temporalOptions("admin").ClientOptions("garo-bench", quiet())
	if err != nil {
		return err
	}
	c, err := client.Dial(opts)
	if err != nil {
		return err
	}
	defer c.Close()
	res.Workflows, res.ActionsByKind = map[string]History{}, map[string]int{}
	creates := map[string][]time.Time{}
	var runners []runnerTimes
	var events, bytes, actions int
	var token []byte
	var read atomic.Int64
	stop := progress(logf, func() string { return fmt.Sprintf("%d histories read", read.Load()) })
	defer stop()
	for {
		page, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: s.namespace, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return fmt.Errorf("list workflows: %w", err)
		}
		for _, ex := range page.Executions {
			h, err := history(ctx, c, ex.Execution.WorkflowId, ex.Execution.RunId)
			if err != nil {
				return err
			}
			typ := ex.Type.Name
			w := res.Workflows[typ]
			w.Runs++
			w.Events += len(h)
			w.MaxEvents = max(w.MaxEvents, len(h))
			scheduled := map[int64]string{}
			for _, e := range h {
				size := proto.Size(e)
				w.Bytes += size
				events, bytes = events+1, bytes+size
				if kind, ok := billable[e.EventType]; ok {
					res.ActionsByKind[kind]++
					actions++
				}
				if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
					scheduled[e.EventId] = a.ActivityType.GetName()
				}
				if a := e.GetActivityTaskStartedEventAttributes(); a != nil && a.Attempt == 1 &&
					(scheduled[a.ScheduledEventId] == activities.CreateRunnerName || scheduled[a.ScheduledEventId] == activities.RunRunnerName) {
					repo := runnerRepo(ex.Execution.WorkflowId)
					creates[repo] = append(creates[repo], e.EventTime.AsTime())
				}
				res.MaxPayloadBytes = max(res.MaxPayloadBytes, inputBytes(e))
			}
			res.MaxCommandsPerTask = max(res.MaxCommandsPerTask, commandsPerTask(h))
			if typ == "RunnerWorkflow" {
				runners = append(runners, runnerTimesOf(ex.Execution.WorkflowId, h))
			}
			res.Workflows[typ] = w
			read.Add(1)
		}
		if token = page.NextPageToken; len(token) == 0 {
			break
		}
	}
	jobs := float64(res.JobsEnqueued)
	for typ, w := range res.Workflows {
		w.EventsPer, w.EventsJob, w.BytesPerJb = float64(w.Events)/float64(w.Runs), float64(w.Events)/jobs, float64(w.Bytes)/jobs
		res.Workflows[typ] = w
	}
	res.HistoryEventsPerJob, res.HistoryBytesPerJob, res.ActionsPerJob = float64(events)/jobs, float64(bytes)/jobs, float64(actions)/jobs
	var simJobs []githubsim.Job
	if _, err := s.simCall(ctx, "GET", "/_sim/jobs", nil, &simJobs); err != nil {
		return err
	}
	res.RunnerPhases = phases(runners, simJobs, res.MaxRunners)
	return webhookToCreate(ctx, s, res, creates)
}

func history(ctx context.Context, c client.Client, id, run string) ([]*historypb.HistoryEvent, error) {
	var out []*historypb.HistoryEvent
	it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// runnerRepo is the repository (owner/repo) of a runner's workflow id.
func runnerRepo(id string) string {
	parts := strings.Split(strings.TrimPrefix(id, "garo/runner/"), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

// webhookToCreate pairs, in each repository, the k-th queued webhook
// received with the k-th create activity started: a runner is made for no
// job in particular. The first maxRunners of a repository's pairs did not
// wait for a free slot: they are reported apart too.
func webhookToCreate(ctx context.Context, s *stack, res *Result, creates map[string][]time.Time) error {
	var deliveries []githubsim.Delivery
	if _, err := s.simCall(ctx, "GET", "/_sim/deliveries", nil, &deliveries); err != nil {
		return err
	}
	queued := map[string][]time.Time{}
	var accept []float64
	sum, n := 0.0, 0
	for _, d := range deliveries {
		if d.Event == "workflow_job" && strings.HasPrefix(d.Repo, "bench/") && d.StatusCode != 0 {
			accept = append(accept, d.Duration*1000)
			sum += d.Duration * 1000
		}
		if d.Event == "workflow_job" && d.Action == "queued" && strings.HasPrefix(d.Repo, "bench/") {
			// Sent at is when the answer came; received is before it.
			queued[d.Repo] = append(queued[d.Repo], d.SentAt.Add(-time.Duration(d.Duration*float64(time.Second))))
			n++
		}
	}
	if n < res.JobsEnqueued {
		// The simulator's log dropped the oldest: no pairing holds.
		return fmt.Errorf("the simulator kept %d queued deliveries of %d jobs: raise its --delivery-log", n, res.JobsEnqueued)
	}
	var lat, below []float64
	for repo, q := range queued {
		c := creates[repo]
		slices.SortFunc(q, func(a, b time.Time) int { return a.Compare(b) })
		slices.SortFunc(c, func(a, b time.Time) int { return a.Compare(b) })
		for i := range min(len(q), len(c)) {
			ms := float64(c[i].Sub(q[i]).Microseconds()) / 1000
			lat = append(lat, ms)
			if i < res.MaxRunners {
				below = append(below, ms)
			}
		}
	}
	res.WebhookToCreateMs, res.WebhookToCreateBelowMaxMs = quantiles(lat), quantiles(below)
	if len(accept) > 0 {
		res.WebhookAcceptMeanMs = sum / float64(len(accept))
	}
	res.WebhookAcceptMs = quantiles(accept)
	return nil
}

// inputBytes is the size of a workflow's input in e: its start's, or the
// one it continued as new with (0 for any other event).
func inputBytes(e *historypb.HistoryEvent) int {
	if a := e.GetWorkflowExecutionStartedEventAttributes(); a != nil {
		return proto.Size(a.GetInput())
	}
	if a := e.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
		return proto.Size(a.GetInput())
	}
	return 0
}

// commandsPerTask is the most commands one workflow task of a history
// issued: the events each command makes name the task that completed
// with it.
func commandsPerTask(h []*historypb.HistoryEvent) int {
	per := map[int64]int{}
	for _, e := range h {
		if id := commandTask(e); id > 0 {
			per[id]++
		}
	}
	most := 0
	for _, n := range per {
		most = max(most, n)
	}
	return most
}

// commandTask is the workflow task whose command made e, or 0.
func commandTask(e *historypb.HistoryEvent) int64 {
	switch {
	case e.GetActivityTaskScheduledEventAttributes() != nil:
		return e.GetActivityTaskScheduledEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetTimerStartedEventAttributes() != nil:
		return e.GetTimerStartedEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetTimerCanceledEventAttributes() != nil:
		return e.GetTimerCanceledEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes() != nil:
		return e.GetSignalExternalWorkflowExecutionInitiatedEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetStartChildWorkflowExecutionInitiatedEventAttributes() != nil:
		return e.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetMarkerRecordedEventAttributes() != nil:
		return e.GetMarkerRecordedEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetUpsertWorkflowSearchAttributesEventAttributes() != nil:
		return e.GetUpsertWorkflowSearchAttributesEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetWorkflowPropertiesModifiedEventAttributes() != nil:
		return e.GetWorkflowPropertiesModifiedEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetActivityTaskCancelRequestedEventAttributes() != nil:
		return e.GetActivityTaskCancelRequestedEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetRequestCancelExternalWorkflowExecutionInitiatedEventAttributes() != nil:
		return e.GetRequestCancelExternalWorkflowExecutionInitiatedEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetWorkflowExecutionContinuedAsNewEventAttributes() != nil:
		return e.GetWorkflowExecutionContinuedAsNewEventAttributes().GetWorkflowTaskCompletedEventId()
	case e.GetWorkflowExecutionCompletedEventAttributes() != nil:
		return e.GetWorkflowExecutionCompletedEventAttributes().GetWorkflowTaskCompletedEventId()
	}
	return 0
}
