package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
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
func historyFigures(ctx context.Context, s *stack, res *Result) error {
	c, err := client.Dial(client.Options{HostPort: s.temporalAddr, Namespace: "default",
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		return err
	}
	defer c.Close()
	res.Workflows, res.ActionsByKind = map[string]History{}, map[string]int{}
	var creates []time.Time
	var events, bytes, actions int
	var token []byte
	for {
		page, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", NextPageToken: token, PageSize: 1000})
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
				if a := e.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.ScheduledEventId] == activities.CreateRunnerName && a.Attempt == 1 {
					creates = append(creates, e.EventTime.AsTime())
				}
			}
			res.Workflows[typ] = w
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

// webhookToCreate pairs the k-th queued webhook received with the k-th
// create activity started: a runner is made for no job in particular.
func webhookToCreate(ctx context.Context, s *stack, res *Result, creates []time.Time) error {
	var deliveries []githubsim.Delivery
	if _, err := s.simCall(ctx, "GET", "/_sim/deliveries", nil, &deliveries); err != nil {
		return err
	}
	var queued []time.Time
	var accept []float64
	sum := 0.0
	for _, d := range deliveries {
		if d.Event == "workflow_job" && strings.HasPrefix(d.Repo, "bench/") && d.StatusCode != 0 {
			accept = append(accept, d.Duration*1000)
			sum += d.Duration * 1000
		}
		if d.Event == "workflow_job" && d.Action == "queued" && strings.HasPrefix(d.Repo, "bench/") {
			// Sent at is when the answer came; received is before it.
			queued = append(queued, d.SentAt.Add(-time.Duration(d.Duration*float64(time.Second))))
		}
	}
	if len(queued) < res.JobsEnqueued {
		// The simulator's log dropped the oldest: no pairing holds.
		return fmt.Errorf("the simulator kept %d queued deliveries of %d jobs: raise its --delivery-log", len(queued), res.JobsEnqueued)
	}
	slices.SortFunc(queued, func(a, b time.Time) int { return a.Compare(b) })
	slices.SortFunc(creates, func(a, b time.Time) int { return a.Compare(b) })
	var lat []float64
	for i := range min(len(queued), len(creates)) {
		lat = append(lat, float64(creates[i].Sub(queued[i]).Microseconds())/1000)
	}
	res.WebhookToCreateMs = quantiles(lat)
	if len(accept) > 0 {
		res.WebhookAcceptMeanMs = sum / float64(len(accept))
	}
	res.WebhookAcceptMs = quantiles(accept)
	return nil
}
