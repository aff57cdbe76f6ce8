package workflows

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// SignalJob is the signal that carries a GitHub workflow_job event to the
// repository's workflow.
const SignalJob = "job"

// Job actions of the workflow_job webhook.
const (
	JobQueued     = "queued"
	JobWaiting    = "waiting"
	JobInProgress = "in_progress"
	JobCompleted  = "completed"
)

// JobEvent is one workflow_job webhook delivery, reduced to what the pool
// needs. It holds no secret.
type JobEvent struct {
	DeliveryID  string     `json:"deliveryId,omitempty"`
	Action      string     `json:"action"`
	Repository  string     `json:"repository"`
	JobID       int64      `json:"jobId"`
	RunID       int64      `json:"runId,omitempty"`
	RunAttempt  int64      `json:"runAttempt,omitempty"`
	Name        string     `json:"name,omitempty"`
	Labels      []string   `json:"labels,omitempty"`
	RunnerID    int64      `json:"runnerId,omitempty"`
	RunnerName  string     `json:"runnerName,omitempty"`
	Conclusion  string     `json:"conclusion,omitempty"`
	CreatedAt   *time.Time `json:"createdAt,omitempty"`
	StartedAt   *time.Time `json:"startedAt,omitempty"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
}

// repoPartPattern is what GitHub allows in an owner or repository name.
var repoPartPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// ParseRepository splits "owner/repo" and checks both parts. GitHub treats
// names case-insensitively; Garo keys its workflows by the lower-case form.
func ParseRepository(full string) (owner, repo string, err error) {
	owner, repo, ok := strings.Cut(full, "/")
	if !ok || !repoPartPattern.MatchString(owner) || !repoPartPattern.MatchString(repo) || repo == "." || repo == ".." {
		return "", "", fmt.Errorf("invalid repository %q: want OWNER/REPO", full)
	}
	return owner, repo, nil
}

// RepositoryWorkflowID is the workflow id of the runner pool of owner/repo.
func RepositoryWorkflowID(owner, repo string) string {
	return "garo/repo/" + strings.ToLower(owner) + "/" + strings.ToLower(repo)
}
