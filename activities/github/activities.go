package github

import (
	"context"

	"github.com/garo-run/garo/activities"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// Activities are the GitHub calls that workflows make directly. Those that
// return secrets (JIT configs, registration tokens) are not among them:
// the activity that obtains one starts the runner with it.
type Activities struct {
	Client *Client
	looks  sweepLooks
}

// Register adds the activities to r under their names
// (activities.GitHub*Name).
func (a *Activities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.ListRunners, activity.RegisterOptions{Name: activities.GitHubListRunnersName})
	r.RegisterActivityWithOptions(a.RunnerByName, activity.RegisterOptions{Name: activities.GitHubRunnerByNameName})
	r.RegisterActivityWithOptions(a.RemoveRunner, activity.RegisterOptions{Name: activities.GitHubRemoveRunnerName})
	r.RegisterActivityWithOptions(a.ListQueuedJobs, activity.RegisterOptions{Name: activities.GitHubListQueuedJobsName})
	r.RegisterActivityWithOptions(a.Reconcile, activity.RegisterOptions{Name: activities.GitHubReconcileName})
	r.RegisterActivityWithOptions(a.RerunJob, activity.RegisterOptions{Name: activities.GitHubRerunJobName})
	r.RegisterActivityWithOptions(a.SweepRepos, activity.RegisterOptions{Name: activities.SweepReposName})
}

// RunnerLookup is the answer of RunnerByName.
type RunnerLookup struct {
	Runner RunnerInfo `json:"runner"`
	Found  bool       `json:"found"`
}

// ListRunners lists every runner of repo.
func (a *Activities) ListRunners(ctx context.Context, repo Repo) ([]RunnerInfo, error) {
	return a.Client.ListRunners(ctx, repo)
}

// RunnerByName finds the runner of repo called name.
func (a *Activities) RunnerByName(ctx context.Context, repo Repo, name string) (RunnerLookup, error) {
	r, found, err := a.Client.RunnerByName(ctx, repo, name)
	return RunnerLookup{Runner: r, Found: found}, err
}

// RemoveRunner removes a runner; idempotent, RunnerBusy while it works.
func (a *Activities) RemoveRunner(ctx context.Context, repo Repo, id int64) error {
	return a.Client.RemoveRunner(ctx, repo, id)
}

// ListQueuedJobs lists the queued jobs of repo.
func (a *Activities) ListQueuedJobs(ctx context.Context, repo Repo) ([]QueuedJob, error) {
	return a.Client.ListQueuedJobs(ctx, repo)
}

// Reconcile takes GitHub's view of a repository: queued and started jobs,
// the end of the running jobs, and the runners asked for.
func (a *Activities) Reconcile(ctx context.Context, in activities.ReconcileInput) (activities.Reconciliation, error) {
	return a.Client.Reconcile(ctx, in)
}

// RerunJob runs a job again, once: a run already at a later attempt than
// the job's is not run again.
func (a *Activities) RerunJob(ctx context.Context, in activities.RerunInput) (activities.RerunResult, error) {
	return a.Client.RerunJob(ctx, in.Repo, in.JobID)
}
