package github

import (
	"context"
	"fmt"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"
	"go.temporal.io/sdk/activity"

	"github.com/garo-run/garo/activities"
)

// sweepParallel bounds the repositories a sweep looks at at once.
const sweepParallel = 8

// sweepLooks remembers when the sweep last looked at each repository,
// so that each is looked at every SweepRepo.Every at most, however often
// the sweep runs. It is the agent's memory: after a restart it looks at
// every repository once.
type sweepLooks struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether repo is due at now, and marks it looked at.
func (l *sweepLooks) due(repo string, every time.Duration, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if t, ok := l.last[repo]; ok && now.Sub(t) < every {
		return false
	}
	l.last[repo] = now
	return true
}

// SweepRepos looks at the repositories of an agent's dormant pools, each
// when its interval has passed since the last look: with one conditional
// request for its queued runs and one for those in progress (an unchanged
// answer is a 304, free of the rate limit). It returns those that have
// such a run: a job of one may wait for a runner whose webhook was lost.
func (a *Activities) SweepRepos(ctx context.Context, repos []activities.SweepRepo) ([]activities.Repo, error) {
	now := time.Now()
	var (
		mu    sync.Mutex
		found []activities.Repo
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, sweepParallel)
	)
	for i, r := range repos {
		if !a.looks.due(r.Repo.String(), r.Every, now) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			active, err := a.Client.HasActiveRuns(ctx, r.Repo)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && first == nil:
				first = err
			case active:
				found = append(found, r.Repo)
			}
			if i%100 == 0 {
				activity.RecordHeartbeat(ctx, i)
			}
		}()
	}
	wg.Wait()
	if first != nil && len(found) == 0 {
		return nil, first
	}
	return found, nil
}

// HasActiveRuns reports whether repo has a run queued or in progress (a
// run in progress may have a job waiting): two conditional requests, of
// one run each.
func (c *Client) HasActiveRuns(ctx context.Context, repo Repo) (bool, error) {
	if err := validRepo(repo); err != nil {
		return false, err
	}
	for _, status := range []string{"queued", "in_progress"} {
		runs, resp, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, repo.Owner, repo.Name,
			&gh.ListWorkflowRunsOptions{Status: status, ListOptions: gh.ListOptions{PerPage: 1}})
		if err != nil {
			return false, classify(fmt.Sprintf("list %s runs of %s", status, repo), resp, err)
		}
		if runs.GetTotalCount() > 0 || len(runs.WorkflowRuns) > 0 {
			return true, nil
		}
	}
	return false, nil
}
