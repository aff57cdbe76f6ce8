// Package workers says which workflows and activities run on which task
// queue, with what worker options. It registers activities only through
// each activities package's Register.
package workers

import (
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/agentpools"
	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/runnerends"
	"github.com/garo-run/garo/activities/runnerlife"
	"github.com/garo-run/garo/activities/runners"
	"github.com/garo-run/garo/workflows"
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterServerWorkflows registers the control-plane workflows on r.
// Replay tests use it too, so that they replay exactly what runs.
func RegisterServerWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.AgentWorkflow, workflow.RegisterOptions{Name: workflows.AgentWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.PoolWorkflow, workflow.RegisterOptions{Name: workflows.PoolWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.RepositoryWorkflow, workflow.RegisterOptions{Name: workflows.RepositoryWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.RunnerWorkflow, workflow.RegisterOptions{Name: workflows.RunnerWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.TokensWorkflow, workflow.RegisterOptions{Name: workflows.TokensWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ReaperWorkflow, workflow.RegisterOptions{Name: workflows.ReaperWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.SweepWorkflow, workflow.RegisterOptions{Name: workflows.SweepWorkflowName})
}

// NewServer returns the worker of garo server on the garo-server task
// queue. Every server replica runs one; they share the queue. dc decodes
// the memos the server's activities read (the client's converter).
func NewServer(c client.Client, namespace, identity string, dc converter.DataConverter) worker.Worker {
	w := worker.New(c, workflows.ServerTaskQueue, worker.Options{
		Identity:          identity,
		WorkerStopTimeout: 10 * time.Second,
		// Pollers follow the load: a burst of runners' first tasks is
		// taken at once, and a quiet server holds few polls open.
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
			InitialNumberOfPollers: 4, MinimumNumberOfPollers: 2, MaximumNumberOfPollers: 16}),
		ActivityTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
			InitialNumberOfPollers: 2, MinimumNumberOfPollers: 1, MaximumNumberOfPollers: 8}),
	})
	RegisterServerWorkflows(w)
	(&agentpools.Activities{Client: c, Namespace: namespace, Converter: dc}).Register(w)
	(&runnerends.Activities{Client: c}).Register(w)
	(&runnerlife.Activities{Client: c, Namespace: namespace}).Register(w)
	return w
}

// AgentDeps are what an agent's activities work with; nil members leave
// their activities unregistered.
type AgentDeps struct {
	Version   string
	GitHub    *github.Client
	Providers []provider.Provider
	// Metrics, when set, takes the agent's activity metrics (the
	// reaper's).
	Metrics prometheus.Registerer
	// Reports carries the runners' ends to their pools.
	Reports activities.Reporter
}

// MaxRunnersPerAgent bounds the runners one agent runs at once (one
// activity each, mostly waiting), with the activities of its other work.
const MaxRunnersPerAgent = 20000

// NewAgent returns the worker of the agent called name on its own task
// queue. It runs activities only: workflows stay on the server's queue.
func NewAgent(c client.Client, name, identity string, deps AgentDeps) worker.Worker {
	w := worker.New(c, workflows.AgentTaskQueue(name), worker.Options{
		Identity:              identity,
		DisableWorkflowWorker: true,
		WorkerStopTimeout:     30 * time.Second,
		// A runner's life is one activity on its agent, open while the
		// runner lives: the SDK's default of 1,000 at once would hold an
		// agent's runners past its thousandth in the queue, uncreated.
		MaxConcurrentActivityExecutionSize: MaxRunnersPerAgent,
		ActivityTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
			InitialNumberOfPollers: 4, MinimumNumberOfPollers: 2, MaximumNumberOfPollers: 16}),
	})
	(&activities.Agent{Version: deps.Version}).Register(w)
	if deps.GitHub != nil {
		(&github.Activities{Client: deps.GitHub}).Register(w)
	}
	// The runner activities answer even without GitHub or providers, with
	// a non-retryable error that tells the pool what is missing.
	ra := &runners.Activities{Agent: name, GitHub: deps.GitHub, Providers: map[string]provider.Provider{},
		Reaped: runners.NewReapedCounter(deps.Metrics), Failures: runners.NewFailureCounter(deps.Metrics), Reports: deps.Reports}
	for _, p := range deps.Providers {
		ra.Providers[p.Kind()] = p
	}
	ra.Register(w)
	return w
}
