// Package workers says which workflows and activities run on which task
// queue, with what worker options.
package workers

import (
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/workflows"
)

// RegisterServerWorkflows registers the control-plane workflows on r.
// Replay tests use it too, so that they replay exactly what runs.
func RegisterServerWorkflows(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.AgentWorkflow, workflow.RegisterOptions{Name: workflows.AgentWorkflowName})
}

// NewServer returns the worker of garo server on the garo-server task
// queue. Every server replica runs one; they share the queue.
func NewServer(c client.Client, identity string) worker.Worker {
	w := worker.New(c, workflows.ServerTaskQueue, worker.Options{
		Identity:          identity,
		WorkerStopTimeout: 10 * time.Second,
	})
	RegisterServerWorkflows(w)
	return w
}

// NewAgent returns the worker of the agent called name on its own task
// queue. It runs activities only: workflows stay on the server's queue.
func NewAgent(c client.Client, name, identity, version string) worker.Worker {
	w := worker.New(c, workflows.AgentTaskQueue(name), worker.Options{
		Identity:              identity,
		DisableWorkflowWorker: true,
		WorkerStopTimeout:     30 * time.Second,
	})
	a := &activities.Agent{Version: version}
	w.RegisterActivityWithOptions(a.ProbeAgent, activity.RegisterOptions{Name: activities.ProbeAgentName})
	return w
}
