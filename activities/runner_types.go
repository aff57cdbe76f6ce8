package activities

// Names of the runner activities the agent serves (activities/runners).
const (
	CreateRunnerName = "CreateRunner"
	DeleteRunnerName = "DeleteRunner"
	RunnerStatusName = "RunnerStatus"
	// WatchRunnerName watches a serving runner's instance until it exits.
	WatchRunnerName = "WatchRunner"
)

// CreateRunnerInput asks an agent to register a runner with GitHub and
// start its instance, in one activity, so that the JIT config (a secret)
// goes from GitHub to the instance and nowhere else.
type CreateRunnerInput struct {
	Owner     string            `json:"owner"`
	Repo      string            `json:"repo"`
	Name      string            `json:"name"`
	Labels    []string          `json:"labels"`
	GroupID   int64             `json:"groupId"`
	Ephemeral bool              `json:"ephemeral"`
	Provider  map[string]string `json:"provider"`
}

// CreateRunnerResult holds ids only.
type CreateRunnerResult struct {
	RunnerID   int64  `json:"runnerId"`
	InstanceID string `json:"instanceId"`
}

// DeleteRunnerInput asks an agent to remove a runner from GitHub and then
// delete its instance.
type DeleteRunnerInput struct {
	Owner    string            `json:"owner"`
	Repo     string            `json:"repo"`
	Name     string            `json:"name"`
	RunnerID int64             `json:"runnerId"`
	Provider map[string]string `json:"provider"`
	// GitHubDone: GitHub removed the runner itself (an ephemeral runner
	// after its job), so only the instance is deleted: no request.
	GitHubDone bool `json:"githubDone,omitempty"`
}

// RunnerStatusInput asks for a runner's status on GitHub and its instance.
type RunnerStatusInput struct {
	Owner    string            `json:"owner"`
	Repo     string            `json:"repo"`
	Name     string            `json:"name"`
	RunnerID int64             `json:"runnerId"`
	Provider map[string]string `json:"provider"`
	// InstanceOnly asks about the instance alone: no GitHub request.
	InstanceOnly bool `json:"instanceOnly,omitempty"`
}

// RunnerStatus is a runner's status: GitHubStatus is "online", "offline"
// or "absent"; Instance is "running", "exited" or "absent".
type RunnerStatus struct {
	GitHubStatus string `json:"githubStatus"`
	Busy         bool   `json:"busy"`
	Instance     string `json:"instance"`
	// ExitCode of an exited instance.
	ExitCode int `json:"exitCode,omitempty"`
}
