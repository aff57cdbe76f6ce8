// Package activities names the activities that Garo's workflows run on the
// agents' task queues, with the types they exchange. Implementations live
// here when they need nothing but the standard library, and otherwise in a
// subpackage (github, provider and one package per provider).
package activities

import (
	"context"
	"os"

	"github.com/garo-run/garo/workflows"
)

// Activity names as registered with the agent worker.
const (
	ProbeAgentName = "ProbeAgent"
)

// Agent holds the activities every agent serves whatever its providers.
type Agent struct {
	Version string
}

// ProbeAgent answers a probe from the agent's workflow: it proves that a
// worker polls the agent's task queue and says which process it is.
func (a *Agent) ProbeAgent(ctx context.Context) (workflows.ProbeResult, error) {
	host, _ := os.Hostname()
	return workflows.ProbeResult{Hostname: host, PID: os.Getpid(), Version: a.Version}, nil
}
