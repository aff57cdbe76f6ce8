package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/garo-run/garo/activities"
)

// maxLost bounds the lost jobs a repository waits on, and the retried
// jobs it remembers.
const maxLost = 1000

// lost records that job id was running on runner of pool p when that
// runner was lost, if the pool retries lost jobs.
func (r *repository) lost(p *pool, runner string, id int64) {
	if id == 0 || !p.s.Config.RetryLostJobs || slices.Contains(r.s.Retried, id) ||
		indexOfJob(r.s.Lost, id) >= 0 {
		return
	}
	if len(r.s.Lost) >= maxLost {
		r.s.Lost = r.s.Lost[1:]
	}
	r.s.Lost = append(r.s.Lost, RunningJob{JobID: id, Pool: p.s.Name, Runner: runner})
}

// retryLost runs a lost job again, once, when GitHub reports that it
// failed: through GitHub's re-run API, on the agent of its pool. The job
// is recorded as retried before the call, so that no crash or replay runs
// it twice; the activity itself starts no second attempt when retried.
func (r *repository) retryLost(ctx workflow.Context, ev JobEvent) {
	i := indexOfJob(r.s.Lost, ev.JobID)
	if i < 0 {
		return
	}
	lost := r.s.Lost[i]
	r.s.Lost = slices.Delete(r.s.Lost, i, i+1)
	p := r.pool(lost.Pool)
	if ev.Conclusion != "failure" || p == nil || slices.Contains(r.s.Retried, ev.JobID) {
		return
	}
	if len(r.s.Retried) >= maxLost {
		r.s.Retried = r.s.Retried[1:]
	}
	r.s.Retried = append(r.s.Retried, ev.JobID)
	p.log.Info("Job failed because its runner was lost; running it again, once", "job", ev.JobID, "runner", lost.Runner)
	agent := p.s.Config.Agent
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              AgentTaskQueue(agent),
		ActivityID:             r.agentActivityID(agent, "rerun"),
		ScheduleToStartTimeout: 10 * time.Minute,
		StartToCloseTimeout:    time.Minute,
		Summary:                "run job again after its runner was lost, in " + r.full(),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 10,
			NonRetryableErrorTypes: []string{activities.ErrTypeInvalid, activities.ErrTypeNotFound}},
	})
	f := workflow.ExecuteActivity(actx, activities.GitHubRerunJobName, activities.RerunInput{
		Repo: activities.Repo{Owner: r.owner, Name: r.repo}, JobID: ev.JobID})
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := f.Get(ctx, nil); err != nil {
			p.log.Warn("Lost job not run again", "job", ev.JobID, "error", err)
		}
	})
}
