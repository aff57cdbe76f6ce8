package workflows

import (
	"fmt"
	"time"
)

// ReaperWorkflow's contract: one Temporal Schedule per agent,
// `garo/reaper/NAME`, starts a ReaperWorkflow on the server's task queue
// every ReaperEvery (overlaps skipped); `temporal schedule trigger` runs
// it at once. Each run removes the instances and GitHub registrations of
// the agent that no running RunnerWorkflow owns, never a busy runner nor
// anything without Garo's mark, and upserts search attribute GaroReaped
// with how many it removed. GaroAgent is the agent. It answers no update,
// query or signal.
const ReaperWorkflowName = "ReaperWorkflow"

// ReaperEvery is how often an agent's reaper runs.
const ReaperEvery = 5 * time.Minute

// ReaperScheduleID is the id of the schedule of agent's reaper; its runs
// have this id with the time of the run appended.
func ReaperScheduleID(agent string) string { return "garo/reaper/" + agent }

// ReaperInput starts a ReaperWorkflow.
type ReaperInput struct {
	Agent string `json:"agent"`
}

// ReaperResult is what one run of the reaper did.
type ReaperResult struct {
	// Instances and Registrations are the orphans removed, as
	// "owner/repo/runner".
	Instances     []string `json:"instances,omitempty"`
	Registrations []string `json:"registrations,omitempty"`
	// Busy are the unowned registrations kept because they run a job.
	Busy []string `json:"busy,omitempty"`
	// AgentGone: the agent is not registered any more; its schedule was
	// deleted.
	AgentGone bool `json:"agentGone,omitempty"`
	// Skipped says why nothing was looked at (the agent was away).
	Skipped string `json:"skipped,omitempty"`
}

// Summary is the one line the Web UI shows of a run.
func (r ReaperResult) Summary() string {
	switch {
	case r.AgentGone:
		return "the agent is unregistered: its reaper schedule was deleted"
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	}
	return fmt.Sprintf("removed %d instances and %d registrations; kept %d busy runners",
		len(r.Instances), len(r.Registrations), len(r.Busy))
}
