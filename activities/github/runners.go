package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/garo-run/garo/internal/ghname"

	gh "github.com/google/go-github/v60/github"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/activities"
)

// Repo names a repository.
type Repo = activities.Repo

// RunnerInfo is what Garo keeps of a GitHub runner.
type RunnerInfo struct {
	ID     int64    `json:"id"`
	Name   string   `json:"name"`
	Status string   `json:"status"`
	Busy   bool     `json:"busy"`
	Labels []string `json:"labels,omitempty"`
}

func runnerInfo(r *gh.Runner) RunnerInfo {
	info := RunnerInfo{ID: r.GetID(), Name: r.GetName(), Status: r.GetStatus(), Busy: r.GetBusy()}
	for _, l := range r.Labels {
		info.Labels = append(info.Labels, l.GetName())
	}
	return info
}

// JITConfig is a just-in-time runner configuration. EncodedConfig is a
// secret: it goes straight to the instance that runs the runner, never to
// a workflow.
type JITConfig struct {
	RunnerID      int64
	EncodedConfig string
}

// CreateJITConfig registers an ephemeral runner called name and returns its
// JIT config. Retries are safe: when the name is taken by a runner that is
// not busy (left by an attempt that failed after GitHub registered it), that
// runner is removed and the call made once more.
func (c *Client) CreateJITConfig(ctx context.Context, repo Repo, name string, labels []string, groupID int64) (JITConfig, error) {
	if err := validRepo(repo); err != nil {
		return JITConfig{}, err
	}
	if groupID == 0 {
		groupID = 1
	}
	req := &gh.GenerateJITConfigRequest{Name: name, RunnerGroupID: groupID, Labels: labels}
	for attempt := 0; ; attempt++ {
		jit, resp, err := c.gh.Actions.GenerateRepoJITConfig(ctx, repo.Owner, repo.Name, req)
		if err == nil {
			return JITConfig{RunnerID: jit.GetRunner().GetID(), EncodedConfig: jit.GetEncodedJITConfig()}, nil
		}
		if resp == nil || resp.StatusCode != http.StatusConflict || attempt > 0 {
			return JITConfig{}, classify(fmt.Sprintf("create JIT config for %s in %s", name, repo), resp, err)
		}
		stale, found, err := c.RunnerByName(ctx, repo, name)
		if err != nil {
			return JITConfig{}, err
		}
		if found {
			if stale.Busy {
				return JITConfig{}, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("runner name %s in %s is taken by a busy runner", name, repo), activities.ErrTypeNameInUse, nil)
			}
			if err := c.RemoveRunner(ctx, repo, stale.ID); err != nil {
				return JITConfig{}, err
			}
		}
	}
}

// RegistrationToken returns a token to register a reusable runner with
// (config.sh); a secret, like a JIT config.
func (c *Client) RegistrationToken(ctx context.Context, repo Repo) (string, time.Time, error) {
	if err := validRepo(repo); err != nil {
		return "", time.Time{}, err
	}
	tok, resp, err := c.gh.Actions.CreateRegistrationToken(ctx, repo.Owner, repo.Name)
	if err != nil {
		return "", time.Time{}, classify("create registration token for "+repo.String(), resp, err)
	}
	return tok.GetToken(), tok.GetExpiresAt().Time, nil
}

// RunnerDownload is one download of the actions runner.
type RunnerDownload struct {
	OS, Architecture, DownloadURL, Filename, SHA256 string
}

// RunnerDownloads lists the actions runner's downloads for repo.
func (c *Client) RunnerDownloads(ctx context.Context, repo Repo) ([]RunnerDownload, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	list, resp, err := c.gh.Actions.ListRunnerApplicationDownloads(ctx, repo.Owner, repo.Name)
	if err != nil {
		return nil, classify("list runner downloads of "+repo.String(), resp, err)
	}
	out := make([]RunnerDownload, 0, len(list))
	for _, d := range list {
		out = append(out, RunnerDownload{OS: d.GetOS(), Architecture: d.GetArchitecture(), DownloadURL: d.GetDownloadURL(),
			Filename: d.GetFilename(), SHA256: d.GetSHA256Checksum()})
	}
	return out, nil
}

// ListRunners returns every runner of repo, following all pages.
func (c *Client) ListRunners(ctx context.Context, repo Repo) ([]RunnerInfo, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	var out []RunnerInfo
	opts := &gh.ListOptions{PerPage: 100}
	for {
		page, resp, err := c.gh.Actions.ListRunners(ctx, repo.Owner, repo.Name, opts)
		if err != nil {
			return nil, classify("list runners of "+repo.String(), resp, err)
		}
		for _, r := range page.Runners {
			out = append(out, runnerInfo(r))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// RunnerByName returns the runner of repo called name, if there is one.
func (c *Client) RunnerByName(ctx context.Context, repo Repo, name string) (RunnerInfo, bool, error) {
	if err := validRepo(repo); err != nil {
		return RunnerInfo{}, false, err
	}
	runners, err := c.ListRunners(ctx, repo)
	if err != nil {
		return RunnerInfo{}, false, err
	}
	for _, r := range runners {
		if r.Name == name {
			return r, true, nil
		}
	}
	return RunnerInfo{}, false, nil
}

// RemoveRunner removes a runner from GitHub. A runner already gone is
// removed; a busy one is an activities.ErrTypeRunnerBusy error.
func (c *Client) RemoveRunner(ctx context.Context, repo Repo, id int64) error {
	if err := validRepo(repo); err != nil {
		return err
	}
	resp, err := c.gh.Actions.RemoveRunner(ctx, repo.Owner, repo.Name, id)
	if err == nil || (resp != nil && resp.StatusCode == http.StatusNotFound) {
		return nil
	}
	if resp != nil && resp.StatusCode == http.StatusUnprocessableEntity {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("runner %d of %s is running a job", id, repo), activities.ErrTypeRunnerBusy, err)
	}
	return classify(fmt.Sprintf("remove runner %d of %s", id, repo), resp, err)
}

// QueuedJob is a job GitHub reports queued.
type QueuedJob = activities.QueuedJob

// ListQueuedJobs returns the queued jobs of repo, from every run that may
// have one (not only queued runs: a run is in progress while its later
// jobs wait): the fallback for webhooks that never arrived. Conditional
// requests keep an unchanged poll free of rate limit.
func (c *Client) ListQueuedJobs(ctx context.Context, repo Repo) ([]QueuedJob, error) {
	if err := validRepo(repo); err != nil {
		return nil, err
	}
	jobs, err := c.activeJobs(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []QueuedJob
	for _, j := range jobs {
		if j.Status == "queued" {
			out = append(out, j.QueuedJob)
		}
	}
	return out, nil
}

// activeJobs returns the jobs of every run that may have a job queued or in
// progress, each job once; none, with an error, once the rate limit left
// is within ReconcileReserve.
func (c *Client) activeJobs(ctx context.Context, repo Repo) ([]activities.JobState, error) {
	var out []activities.JobState
	seen := map[int64]bool{}
	if err := c.budget.reserved("look at the runs of " + repo.String()); err != nil {
		return nil, err
	}
	for _, status := range runStatusesWithQueuedJobs {
		runs, err := c.runsWithStatus(ctx, repo, status)
		if err != nil {
			return nil, err
		}
		for _, run := range runs {
			id := run.GetID()
			if seen[id] {
				continue // its status changed between two lists
			}
			seen[id] = true
			if status == "queued" {
				if jobs, ok := c.queuedRuns.get(id, run.GetRunAttempt(), run.GetUpdatedAt().Time); ok {
					out = append(out, jobs...)
					continue
				}
			}
			// A look at many runs stops, whole, at the reserve: a partial
			// view would read as jobs gone.
			if err := c.budget.reserved("look at the runs of " + repo.String()); err != nil {
				return nil, err
			}
			jobs, err := c.runJobs(ctx, repo, id)
			if err != nil {
				return nil, err
			}
			if status == "queued" {
				c.queuedRuns.put(id, run.GetRunAttempt(), run.GetUpdatedAt().Time, jobs)
			}
			out = append(out, jobs...)
		}
	}
	return out, nil
}

// Reconcile takes GitHub's view of a repository for a reconciliation: the
// jobs queued and in progress, which of the jobs in.Running have ended (a
// job is in progress only in an active run, so only those not seen there
// are looked up, at most MaxReconcileJobs), and the runners asked for.
// Every GET is conditional: an unchanged answer costs no rate limit. With
// in.RedeliverSince it also asks GitHub to redeliver the webhooks that
// failed since then.
func (c *Client) Reconcile(ctx context.Context, in activities.ReconcileInput) (activities.Reconciliation, error) {
	if err := validRepo(in.Repo); err != nil {
		return activities.Reconciliation{}, err
	}
	var out activities.Reconciliation
	if in.RunnersOnly {
		return c.reconcileRunners(ctx, in, out)
	}
	jobs, err := c.activeJobs(ctx, in.Repo)
	if err != nil {
		return out, err
	}
	out.QueuedComplete = true
	known := map[int64]activities.JobState{}
	for _, j := range jobs {
		known[j.ID] = j
		switch j.Status {
		case "queued":
			out.Queued = append(out.Queued, j.QueuedJob)
		case "in_progress":
			out.Started = append(out.Started, j)
		}
	}
	looked := 0
	for _, id := range in.Running {
		j, ok := known[id]
		if !ok {
			if looked >= activities.MaxReconcileJobs {
				continue
			}
			looked++
			if j, ok, err = c.job(ctx, in.Repo, id); err != nil {
				return out, err
			} else if !ok {
				j = activities.JobState{QueuedJob: QueuedJob{ID: id}, Status: "gone"}
			}
		}
		if j.Status == "completed" || j.Status == "gone" {
			out.Ended = append(out.Ended, j)
		}
	}
	if in.RedeliverSince != nil {
		// Best effort: the view above recovers the state anyway.
		out.Redelivered, err = c.RedeliverFailed(ctx, in.Repo, *in.RedeliverSince)
		if err != nil {
			out.RedeliverError = err.Error()
		}
	}
	return c.reconcileRunners(ctx, in, out)
}

// reconcileRunners adds to out the runners of in.Runners that GitHub
// lists, with their status.
func (c *Client) reconcileRunners(ctx context.Context, in activities.ReconcileInput, out activities.Reconciliation) (activities.Reconciliation, error) {
	if len(in.Runners) == 0 {
		return out, nil
	}
	runners, err := c.ListRunners(ctx, in.Repo)
	if err != nil {
		return out, err
	}
	for _, r := range runners {
		if slices.Contains(in.Runners, r.Name) {
			out.Runners = append(out.Runners, activities.RunnerState{Name: r.Name, ID: r.ID, Status: r.Status, Busy: r.Busy})
		}
	}
	return out, nil
}

// RerunJob starts a new attempt of the run of job id with that job, unless
// the run is at a later attempt than the job's already (a retry after the
// answer was lost): safe to retry.
func (c *Client) RerunJob(ctx context.Context, repo Repo, id int64) (activities.RerunResult, error) {
	if err := validRepo(repo); err != nil {
		return activities.RerunResult{}, err
	}
	j, resp, err := c.gh.Actions.GetWorkflowJobByID(ctx, repo.Owner, repo.Name, id)
	if err != nil {
		return activities.RerunResult{}, classify(fmt.Sprintf("get job %d of %s", id, repo), resp, err)
	}
	run, resp, err := c.gh.Actions.GetWorkflowRunByID(ctx, repo.Owner, repo.Name, j.GetRunID())
	if err != nil {
		return activities.RerunResult{}, classify(fmt.Sprintf("get run %d of %s", j.GetRunID(), repo), resp, err)
	}
	if int64(run.GetRunAttempt()) > j.GetRunAttempt() {
		return activities.RerunResult{Already: true}, nil
	}
	if resp, err := c.gh.Actions.RerunJobByID(ctx, repo.Owner, repo.Name, id); err != nil {
		if resp != nil && resp.StatusCode == http.StatusForbidden && resp.Header.Get("X-RateLimit-Remaining") != "0" {
			return activities.RerunResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("job %d of %s cannot be run again: %v", id, repo, err), activities.ErrTypeInvalid, err)
		}
		return activities.RerunResult{}, classify(fmt.Sprintf("re-run job %d of %s", id, repo), resp, err)
	}
	return activities.RerunResult{Rerun: true}, nil
}

// job returns one job of repo; false when GitHub does not know it.
func (c *Client) job(ctx context.Context, repo Repo, id int64) (activities.JobState, bool, error) {
	j, resp, err := c.gh.Actions.GetWorkflowJobByID(ctx, repo.Owner, repo.Name, id)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return activities.JobState{}, false, nil
	}
	if err != nil {
		return activities.JobState{}, false, classify(fmt.Sprintf("get job %d of %s", id, repo), resp, err)
	}
	return jobState(j), true, nil
}

func jobState(j *gh.WorkflowJob) activities.JobState {
	s := activities.JobState{
		QueuedJob: QueuedJob{ID: j.GetID(), RunID: j.GetRunID(), Name: j.GetName(), Labels: j.Labels,
			CreatedAt: j.GetCreatedAt().Time},
		Status: j.GetStatus(), Conclusion: j.GetConclusion(), RunnerName: j.GetRunnerName(),
	}
	if j.StartedAt != nil && j.GetStatus() != "queued" {
		t := j.GetStartedAt().Time
		s.StartedAt = &t
	}
	if j.CompletedAt != nil && j.GetStatus() == "completed" {
		t := j.GetCompletedAt().Time
		s.CompletedAt = &t
	}
	return s
}

// runStatusesWithQueuedJobs are the statuses of the workflow runs that
// may have a job queued: a run with several jobs is in_progress while its
// later jobs wait (needs:, a matrix, max-parallel), pending while it waits
// for its concurrency group, waiting for an approval.
var runStatusesWithQueuedJobs = []string{"queued", "in_progress", "pending", "waiting"}

// runsWithStatus lists the runs of repo with a status, every page.
func (c *Client) runsWithStatus(ctx context.Context, repo Repo, status string) ([]*gh.WorkflowRun, error) {
	var out []*gh.WorkflowRun
	opts := &gh.ListWorkflowRunsOptions{Status: status, ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		runs, resp, err := c.gh.Actions.ListRepositoryWorkflowRuns(ctx, repo.Owner, repo.Name, opts)
		if err != nil {
			return nil, classify(fmt.Sprintf("list %s runs of %s", status, repo), resp, err)
		}
		out = append(out, runs.WorkflowRuns...)
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (c *Client) runJobs(ctx context.Context, repo Repo, runID int64) ([]activities.JobState, error) {
	var out []activities.JobState
	opts := &gh.ListWorkflowJobsOptions{Filter: "latest", ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		jobs, resp, err := c.gh.Actions.ListWorkflowJobs(ctx, repo.Owner, repo.Name, runID, opts)
		if err != nil {
			return nil, classify(fmt.Sprintf("list jobs of run %d of %s", runID, repo), resp, err)
		}
		for _, j := range jobs.Jobs {
			st := jobState(j)
			st.RunID = runID
			out = append(out, st)
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// validRepo refuses, without a request, a repository name GitHub would
// not allow: names reach here from workflows, which the API checked
// already; this is defence in depth against a path into another URL.
func validRepo(repo Repo) error {
	if _, _, err := ghname.Parse(repo.Owner + "/" + repo.Name); err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeInvalid, nil)
	}
	return nil
}

// classify turns a go-github error into the error an activity returns:
// rate limits retry after exactly the delay GitHub asks for; client errors
// that no retry can fix do not retry; the rest retries with the policy's
// backoff.
func classify(what string, resp *gh.Response, err error) error {
	var (
		primary   *gh.RateLimitError
		secondary *gh.AbuseRateLimitError
	)
	switch {
	case errors.As(err, &primary):
		return rateLimited(what+": primary rate limit", time.Until(primary.Rate.Reset.Time), err)
	case errors.As(err, &secondary):
		return rateLimited(what+": secondary rate limit", secondary.GetRetryAfter(), err)
	case resp == nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || (code == http.StatusForbidden && resp.Header.Get("X-RateLimit-Remaining") == "0"):
		if s := resp.Header.Get("Retry-After"); s != "" {
			n, _ := strconv.Atoi(s)
			return rateLimited(what+": rate limited", time.Duration(n)*time.Second, err)
		}
		return rateLimited(what+": rate limited", time.Until(resp.Rate.Reset.Time), err)
	case code == http.StatusNotFound:
		return temporal.NewNonRetryableApplicationError(what+": not found (does the app have access?)", activities.ErrTypeNotFound, err)
	case code == http.StatusUnprocessableEntity || code == http.StatusBadRequest:
		return temporal.NewNonRetryableApplicationError(what+": "+err.Error(), activities.ErrTypeInvalid, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// rateLimited is a retryable error whose next attempt waits d (at least a
// second, plus a second of margin for clock skew).
func rateLimited(msg string, d time.Duration, cause error) error {
	d = max(d, 0) + time.Second
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf("%s; retrying in %s", msg, d.Round(time.Second)),
		activities.ErrTypeRateLimited, temporal.ApplicationErrorOptions{NextRetryDelay: d, Cause: cause})
}

// Runner returns the runner of repo with the given id, if it exists: one
// request, where RunnerByName lists them all.
func (c *Client) Runner(ctx context.Context, repo Repo, id int64) (RunnerInfo, bool, error) {
	if err := validRepo(repo); err != nil {
		return RunnerInfo{}, false, err
	}
	r, resp, err := c.gh.Actions.GetRunner(ctx, repo.Owner, repo.Name, id)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return RunnerInfo{}, false, nil
	}
	if err != nil {
		return RunnerInfo{}, false, classify(fmt.Sprintf("get runner %d of %s", id, repo), resp, err)
	}
	return runnerInfo(r), true, nil
}

// RepoURL is the repository's web URL, which a runner registers with.
func (c *Client) RepoURL(repo Repo) string {
	return strings.TrimSuffix(c.webURL, "/") + "/" + repo.Owner + "/" + repo.Name
}
