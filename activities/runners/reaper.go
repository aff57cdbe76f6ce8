package runners

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/activities"
	"github.com/garo-run/garo/activities/provider"
)

// garoRunnerName is how Garo names its runners on GitHub (garo-PREFIX-...,
// PREFIX six hex digits from the repository's first run): the reaper
// looks at no other registration.
var garoRunnerName = regexp.MustCompile(`^garo-[0-9a-f]{6}-[A-Za-z0-9._-]+$`)

// NewReapedCounter registers garo_reaper_removed_total{kind} (instance or
// registration) on reg, when set.
func NewReapedCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "garo_reaper_removed_total",
		Help: "Orphaned runner instances and GitHub registrations the reaper removed.",
	}, []string{"kind"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// ReaperInventory lists the agent's instances (by its tag, every
// provider) and the registrations named as Garo's runners in the
// repositories given and in those its instances belong to.
func (a *Activities) ReaperInventory(ctx context.Context, in activities.ReaperInventoryInput) (activities.ReaperInventory, error) {
	var inv activities.ReaperInventory
	repos := slices.Clone(in.Repositories)
	kinds := make([]string, 0, len(a.Providers))
	for k := range a.Providers {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		list, err := a.Providers[k].List(ctx, map[string]string{"garo-agent": a.Agent})
		if err != nil {
			return inv, fmt.Errorf("list %s instances of agent %s: %w", k, a.Agent, err)
		}
		for _, i := range list {
			owner, name, ok := strings.Cut(i.Tags["garo-repository"], "/")
			if !ok {
				continue // not Garo's
			}
			repo := activities.Repo{Owner: owner, Name: name}
			inv.Instances = append(inv.Instances, activities.ReaperItem{Repo: repo, Name: i.Name})
			if !slices.Contains(repos, repo) {
				repos = append(repos, repo)
			}
		}
	}
	if a.GitHub == nil {
		return inv, nil
	}
	for _, repo := range repos {
		runners, err := a.GitHub.ListRunners(ctx, repo)
		if err != nil {
			return inv, fmt.Errorf("list the runners of %s: %w", repo, err)
		}
		for _, r := range runners {
			if garoRunnerName.MatchString(r.Name) {
				inv.Registrations = append(inv.Registrations, activities.ReaperItem{Repo: repo, Name: r.Name, RunnerID: r.ID, Busy: r.Busy})
			}
		}
		activity.RecordHeartbeat(ctx)
	}
	return inv, nil
}

// ReaperRemove removes orphaned instances and registrations; one already
// gone counts as removed, and a registration GitHub reports busy is kept.
// Each removal is logged and counted.
func (a *Activities) ReaperRemove(ctx context.Context, in activities.ReaperRemoveInput) (activities.ReaperRemoved, error) {
	var out activities.ReaperRemoved
	lg := activity.GetLogger(ctx)
	for _, i := range in.Instances {
		if !a.ownsInstance(ctx, i) {
			continue
		}
		if err := a.deleteInstance(ctx, i.Name); err != nil {
			return out, err
		}
		lg.Info("Reaper removed an orphaned runner instance: no runner workflow owns it", "runner", i.Name, "repository", i.Repo.String())
		a.countReaped("instance")
		out.Instances = append(out.Instances, i.String())
	}
	if len(in.Registrations) > 0 && a.GitHub == nil {
		return out, temporal.NewNonRetryableApplicationError("agent "+a.Agent+" has no GitHub credentials", activities.ErrTypeNoGitHub, nil)
	}
	for _, r := range in.Registrations {
		if !garoRunnerName.MatchString(r.Name) {
			continue
		}
		err := a.GitHub.RemoveRunner(ctx, r.Repo, r.RunnerID)
		var ae *temporal.ApplicationError
		switch {
		case errors.As(err, &ae) && ae.Type() == activities.ErrTypeRunnerBusy:
			out.Busy = append(out.Busy, r.String())
			continue
		case err != nil:
			return out, err
		}
		lg.Info("Reaper removed an orphaned GitHub registration: no runner workflow owns it", "runner", r.Name, "repository", r.Repo.String())
		a.countReaped("registration")
		out.Registrations = append(out.Registrations, r.String())
	}
	return out, nil
}

// ownsInstance: the instance carries this agent's tag (checked again,
// since the list was taken earlier).
func (a *Activities) ownsInstance(ctx context.Context, i activities.ReaperItem) bool {
	for _, p := range a.Providers {
		if inst, err := p.Get(ctx, i.Name); err == nil {
			return provider.HasTags(inst.Tags, map[string]string{"garo-agent": a.Agent, "garo-repository": i.Repo.String()})
		}
	}
	return false
}

// deleteInstance deletes the instance from whichever provider has it.
func (a *Activities) deleteInstance(ctx context.Context, name string) error {
	for k, p := range a.Providers {
		err := p.Delete(ctx, name)
		switch {
		case err == nil, errors.Is(err, provider.ErrNotFound):
		default:
			return fmt.Errorf("delete %s instance %s: %w", k, name, err)
		}
	}
	return nil
}

func (a *Activities) countReaped(kind string) {
	if a.Reaped != nil {
		a.Reaped.WithLabelValues(kind).Inc()
	}
}
