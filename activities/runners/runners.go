// Package runners holds the activities that create and delete runners on
// an agent: each obtains what it needs from GitHub and acts on the
// provider in one step, so that secrets (JIT configs, registration tokens)
// travel from GitHub to the instance and never into a workflow history.
package runners

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/github"
	"github.com/garo-run/garo/activities/provider"
	"github.com/prometheus/client_golang/prometheus"
)

// Environment variables GitHub's runner reads its inputs from (the
// simulator's runner reads the same).
const (
	envJITConfig = "ACTIONS_RUNNER_INPUT_JITCONFIG"
	envURL       = "ACTIONS_RUNNER_INPUT_URL"
	envToken     = "ACTIONS_RUNNER_INPUT_TOKEN"
	envName      = "ACTIONS_RUNNER_INPUT_NAME"
	envLabels    = "ACTIONS_RUNNER_INPUT_LABELS"
	envEphemeral = "ACTIONS_RUNNER_INPUT_EPHEMERAL"
)

// Activities serve the runner activities of one agent.
type Activities struct {
	Agent     string
	GitHub    *github.Client
	Providers map[string]provider.Provider
	// Reaped counts what the reaper removed (NewReapedCounter); optional.
	Reaped *prometheus.CounterVec
	// Failures counts the runners that could not be created
	// (NewFailureCounter); optional.
	Failures *prometheus.CounterVec
	// Reports carries the runners' ends to their pools; optional.
	Reports activities.Reporter
	// lives are the runners RunRunner runs in this process.
	lives lifeMemory
}

// NewFailureCounter registers garo_runner_provisioning_failures_total
// {provider, reason} on reg, when set. Reasons: refused (the provider
// refuses as configured), invalid (GitHub or the options refuse the
// request), unavailable (no such provider, no GitHub credentials) and
// error (anything that may pass on a retry).
func NewFailureCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "garo_runner_provisioning_failures_total",
		Help: "Attempts to create a runner that failed, by provider and reason.",
	}, []string{"provider", "reason"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// countFailure counts a failed create by its reason.
func (a *Activities) countFailure(kind string, err error) {
	if a.Failures == nil || err == nil {
		return
	}
	reason := "error"
	var ae *temporal.ApplicationError
	switch {
	case errors.Is(err, provider.ErrRefused):
		reason = "refused"
	case errors.As(err, &ae) && (ae.Type() == activities.ErrTypeInvalid || ae.Type() == activities.ErrTypeNameInUse):
		reason = "invalid"
	case errors.As(err, &ae) && (ae.Type() == activities.ErrTypeNoProvider || ae.Type() == activities.ErrTypeNoGitHub):
		reason = "unavailable"
	}
	if _, ok := a.Providers[kind]; !ok {
		kind = "unknown" // a label from a fixed set
	}
	a.Failures.WithLabelValues(kind, reason).Inc()
}

// Register adds the activities to r under their names.
func (a *Activities) Register(r worker.ActivityRegistry) {
	r.RegisterActivityWithOptions(a.CreateRunner, activity.RegisterOptions{Name: activities.CreateRunnerName})
	r.RegisterActivityWithOptions(a.DeleteRunner, activity.RegisterOptions{Name: activities.DeleteRunnerName})
	r.RegisterActivityWithOptions(a.RunnerStatus, activity.RegisterOptions{Name: activities.RunnerStatusName})
	r.RegisterActivityWithOptions(a.WatchRunner, activity.RegisterOptions{Name: activities.WatchRunnerName})
	r.RegisterActivityWithOptions(a.RunRunner, activity.RegisterOptions{Name: activities.RunRunnerName})
	r.RegisterActivityWithOptions(a.ReaperInventory, activity.RegisterOptions{Name: activities.ReaperInventoryName})
	r.RegisterActivityWithOptions(a.ReaperRemove, activity.RegisterOptions{Name: activities.ReaperRemoveName})
}

func (a *Activities) provider(cfg map[string]string) (provider.Provider, error) {
	p, ok := a.Providers[cfg["kind"]]
	if !ok {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("agent %s offers no provider %q", a.Agent, cfg["kind"]), activities.ErrTypeNoProvider, nil)
	}
	return p, nil
}

// options are a pool's provider options without its kind.
func options(cfg map[string]string) map[string]string {
	out := maps.Clone(cfg)
	delete(out, "kind")
	return out
}

func (a *Activities) github() (*github.Client, error) {
	if a.GitHub == nil {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("agent %s has no GitHub credentials", a.Agent), activities.ErrTypeNoGitHub, nil)
	}
	return a.GitHub, nil
}

// heartbeat records a heartbeat every interval until the returned stop is
// called, so that Temporal notices within HeartbeatTimeout when an agent
// dies in the middle of a long provider call.
func heartbeat(ctx context.Context, every time.Duration) (stop func()) {
	return beat(ctx, every, func() any { return nil })
}

// heartbeatEvery is how often the runner activities heartbeat.
const heartbeatEvery = 5 * time.Second

func tags(agent, owner, repo string) map[string]string {
	return map[string]string{"garo-agent": agent, "garo-repository": owner + "/" + repo}
}

// CreateRunner registers the runner with GitHub and starts its instance.
// Safe to retry: an instance that runs already, or that ran and ended
// cleanly, is kept and its runner id looked up (a runner is never started
// twice); one that crashed is replaced, and so is a stale registration of
// the same name.
func (a *Activities) CreateRunner(ctx context.Context, in activities.CreateRunnerInput) (activities.CreateRunnerResult, error) {
	res, err := a.createRunner(ctx, in)
	a.countFailure(in.Provider["kind"], err)
	return res, err
}

func (a *Activities) createRunner(ctx context.Context, in activities.CreateRunnerInput) (activities.CreateRunnerResult, error) {
	defer heartbeat(ctx, heartbeatEvery)()
	p, err := a.provider(in.Provider)
	if err != nil {
		return activities.CreateRunnerResult{}, err
	}
	// The server checked the options against what this agent reported;
	// check again, for a pool configured before an agent upgrade.
	if err := provider.CheckOptions(p.Options(), in.Provider); err != nil {
		return activities.CreateRunnerResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeInvalid, nil)
	}
	gh, err := a.github()
	if err != nil {
		return activities.CreateRunnerResult{}, err
	}
	repo := github.Repo{Owner: in.Owner, Name: in.Repo}
	if res, done, err := adopt(ctx, p, gh, repo, in.Name); done || err != nil {
		return res, err
	}
	req := provider.CreateRequest{Name: in.Name, Tags: tags(a.Agent, in.Owner, in.Repo), Options: options(in.Provider),
		RepoURL: gh.RepoURL(repo), Labels: in.Labels}
	var runnerID int64
	if in.Ephemeral {
		jit, err := gh.CreateJITConfig(ctx, repo, in.Name, in.Labels, in.GroupID)
		if err != nil {
			return activities.CreateRunnerResult{}, err
		}
		runnerID = jit.RunnerID
		req.Env = map[string]string{envJITConfig: jit.EncodedConfig}
	} else {
		tok, _, err := gh.RegistrationToken(ctx, repo)
		if err != nil {
			return activities.CreateRunnerResult{}, err
		}
		req.Env = map[string]string{envToken: tok, envURL: gh.RepoURL(repo), envName: in.Name,
			envLabels: strings.Join(in.Labels, ","), envEphemeral: "false"}
	}
	inst, err := p.Create(ctx, req)
	if errors.Is(err, provider.ErrRefused) {
		return activities.CreateRunnerResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("start instance of runner %s: %v", in.Name, err), activities.ErrTypeInvalid, err)
	}
	if err != nil && !errors.Is(err, provider.ErrDuplicate) {
		return activities.CreateRunnerResult{}, fmt.Errorf("start instance of runner %s: %w", in.Name, err)
	}
	activity.GetLogger(ctx).Info("Runner started", "runner", in.Name, "repository", repo.String(),
		"runnerId", runnerID, "instance", inst.ID, "provider", p.Kind())
	return activities.CreateRunnerResult{RunnerID: runnerID, InstanceID: inst.ID}, nil
}

// adopt takes up what an earlier attempt of a create left: a running
// instance (its runner id looked up), or one that ran and ended cleanly
// (it served as this runner, and is not started twice). A crashed one, or
// a running one GitHub does not know, is removed, to start afresh. done
// tells that the runner exists.
func adopt(ctx context.Context, p provider.Provider, gh *github.Client, repo github.Repo, name string) (res activities.CreateRunnerResult, done bool, err error) {
	inst, err := p.Get(ctx, name)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		return res, false, nil
	case err != nil:
		// Not knowing whether an earlier attempt started it, start none:
		// a second instance would be a second runner.
		return res, false, fmt.Errorf("look up instance of runner %s: %w", name, err)
	case inst.State == provider.StateRunning:
		r, found, err := gh.RunnerByName(ctx, repo, name)
		if err != nil {
			return res, false, err
		}
		if found {
			return activities.CreateRunnerResult{RunnerID: r.ID, InstanceID: inst.ID}, true, nil
		}
		// Running but unregistered (a reusable runner still configuring,
		// or one that lost its registration): start afresh.
	case inst.ExitCode == 0:
		// The workflow sees it exited and removes it.
		r, _, err := gh.RunnerByName(ctx, repo, name)
		if err != nil {
			return res, false, err
		}
		activity.GetLogger(ctx).Info("Runner already ran and ended; not started again", "runner", name, "repository", repo.String())
		return activities.CreateRunnerResult{RunnerID: r.ID, InstanceID: inst.ID}, true, nil
	}
	if err := p.Delete(ctx, name); err != nil && !errors.Is(err, provider.ErrNotFound) {
		return res, false, fmt.Errorf("replace instance %s: %w", name, err)
	}
	return res, false, nil
}

// DeleteRunner removes the runner from GitHub first (a busy one is a
// RunnerBusy error: nothing is forced; with WaitBusy it is waited for),
// then deletes its instance, and with Pool reports the end to the pool.
func (a *Activities) DeleteRunner(ctx context.Context, in activities.DeleteRunnerInput) error {
	p, err := a.provider(in.Provider)
	if err != nil {
		return err
	}
	if in.WaitBusy {
		defer beat(ctx, heartbeatEvery, func() any { return "removing" })()
		id := in.RunnerID
		if in.GitHubDone {
			id = -1
		}
		if err := a.remove(ctx, activities.CreateRunnerInput{Owner: in.Owner, Repo: in.Repo, Name: in.Name}, p, id, true); err != nil {
			return err
		}
		a.report(ctx, in.Pool, in.Name, activities.RunnerReport{Outcome: activities.OutcomeDeleted, RunnerID: in.RunnerID})
		activity.GetLogger(ctx).Info("Runner deleted", "runner", in.Name, "repository", in.Owner+"/"+in.Repo)
		return nil
	}
	defer heartbeat(ctx, heartbeatEvery)()
	gh, err := a.github()
	if err != nil {
		return err
	}
	repo := github.Repo{Owner: in.Owner, Name: in.Repo}
	id := in.RunnerID
	if in.GitHubDone {
		id = -1
	}
	if id == 0 {
		r, found, err := gh.RunnerByName(ctx, repo, in.Name)
		if err != nil {
			return err
		}
		if found {
			id = r.ID
		}
	}
	if id > 0 {
		if err := gh.RemoveRunner(ctx, repo, id); err != nil {
			return err
		}
	}
	if err := p.Delete(ctx, in.Name); err != nil && !errors.Is(err, provider.ErrNotFound) {
		return fmt.Errorf("delete instance of runner %s: %w", in.Name, err)
	}
	activity.GetLogger(ctx).Info("Runner deleted", "runner", in.Name, "repository", repo.String(), "runnerId", id)
	return nil
}

// watchEvery is how often WatchRunner looks at the instance: a local
// call, no GitHub request. A provider that reports exits is looked at
// every notifiedWatchEvery only, often enough to heartbeat and to see an
// instance that vanished: fewer wake-ups of an idle agent.
const (
	watchEvery         = 2 * time.Second
	notifiedWatchEvery = 20 * time.Second
)

// watchMargin is how long before its deadline WatchRunner returns, so
// that the workflow starts the next watch rather than retrying this one.
const watchMargin = 30 * time.Second

// WatchRunner watches the runner's instance until it exits or vanishes,
// heartbeating meanwhile, and reports it; a little before the activity's
// deadline it reports the instance still running, and the workflow
// watches on. An exit is known at once from a provider that reports exits
// (provider.ExitNotifier), otherwise within watchEvery; a watch costs the
// workflow a few events an hour.
func (a *Activities) WatchRunner(ctx context.Context, in activities.RunnerStatusInput) (activities.RunnerStatus, error) {
	p, err := a.provider(in.Provider)
	if err != nil {
		return activities.RunnerStatus{}, err
	}
	end := time.Now().Add(time.Hour)
	if d, ok := ctx.Deadline(); ok {
		end = d.Add(-watchMargin)
	}
	every := watchEvery
	var exited <-chan struct{}
	if n, ok := p.(provider.ExitNotifier); ok {
		exited, every = n.Exited(in.Name), notifiedWatchEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		inst, err := p.Get(ctx, in.Name)
		switch {
		case errors.Is(err, provider.ErrNotFound):
			return activities.RunnerStatus{Instance: "absent"}, nil
		case err != nil:
			activity.GetLogger(ctx).Warn("Runner instance not read; watching on", "runner", in.Name, "error", err)
		case inst.State == provider.StateExited:
			return activities.RunnerStatus{Instance: inst.State, ExitCode: inst.ExitCode}, nil
		}
		activity.RecordHeartbeat(ctx)
		if time.Now().After(end) {
			return activities.RunnerStatus{Instance: provider.StateRunning}, nil
		}
		select {
		case <-ctx.Done():
			return activities.RunnerStatus{}, ctx.Err()
		case <-activity.GetWorkerStopChannel(ctx):
			// The agent stops: the runner is still running, so the
			// workflow starts the next watch, which this agent takes when
			// it is back. Not an error: an agent's stop is routine.
			activity.GetLogger(ctx).Info("Agent stopping; the runner's watch goes on when it is back", "runner", in.Name)
			return activities.RunnerStatus{Instance: provider.StateRunning}, nil
		case <-exited:
			exited = nil // it has exited: the next look reports how
		case <-t.C:
		}
	}
}

// RunnerStatus reports the runner's status on GitHub and its instance's.
func (a *Activities) RunnerStatus(ctx context.Context, in activities.RunnerStatusInput) (activities.RunnerStatus, error) {
	p, err := a.provider(in.Provider)
	if err != nil {
		return activities.RunnerStatus{}, err
	}
	st := activities.RunnerStatus{GitHubStatus: "absent", Instance: "absent"}
	if inst, err := p.Get(ctx, in.Name); err == nil {
		st.Instance, st.ExitCode = inst.State, inst.ExitCode
	} else if !errors.Is(err, provider.ErrNotFound) {
		return st, err
	}
	if in.InstanceOnly {
		st.GitHubStatus = ""
		return st, nil
	}
	gh, err := a.github()
	if err != nil {
		return st, err
	}
	repo := github.Repo{Owner: in.Owner, Name: in.Repo}
	var r github.RunnerInfo
	var found bool
	if in.RunnerID != 0 {
		r, found, err = gh.Runner(ctx, repo, in.RunnerID)
	} else {
		r, found, err = gh.RunnerByName(ctx, repo, in.Name)
	}
	if err != nil {
		return st, err
	}
	if found {
		st.GitHubStatus, st.Busy = r.Status, r.Busy
	}
	return st, nil
}
