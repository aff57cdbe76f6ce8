package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/workflows"
)

// TemporalRepositories implements Repositories on RepositoryWorkflows.
type TemporalRepositories struct {
	Client    client.Client
	Namespace string
	// Cursors seal the page tokens of the repository listing.
	Cursors *Cursors
	// Converter decodes the memos the listing carries: the client's
	// (default: Temporal's, unencrypted).
	Converter converter.DataConverter
}

// closingRetry bounds how long ConfigurePool waits for the workflow of a
// repository whose last pool just ended, so that it can start a new one.
const closingRetry = 10 * time.Second

// ConfigurePool starts the repository's workflow if it is not running and
// sends it the validated configure update, in one call.
func (t *TemporalRepositories) ConfigurePool(ctx context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error) {
	opts := client.StartWorkflowOptions{
		ID:                    workflows.RepositoryWorkflowID(owner, repo),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAttributeRepository.ValueSet(owner+"/"+repo),
			workflows.SearchAttributeAgent.ValueSet(req.Config.Agent),
			workflows.SearchAttributeAgents.ValueSet([]string{req.Config.Agent})),
		StaticSummary: "runner pools of " + owner + "/" + repo,
	}
	deadline := time.Now().Add(closingRetry)
	for {
		var v workflows.PoolView
		err := runUpdateWithStart(ctx, t.Client, opts, workflows.RepositoryWorkflowName,
			workflows.RepositoryInput{Owner: owner, Repo: repo}, workflows.UpdateConfigure, req, &v)
		var rej *RejectedError
		if !errors.As(err, &rej) || rej.Type != workflows.ErrTypeClosing || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Get returns the repository's live state from its workflow.
func (t *TemporalRepositories) Get(ctx context.Context, owner, repo string) (workflows.RepositoryView, error) {
	var v workflows.RepositoryView
	err := queryRunning(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), &v)
	return v, err
}

// Usage asks the repository's workflow for its usage (QueryUsage).
func (t *TemporalRepositories) Usage(ctx context.Context, owner, repo string, req workflows.UsageRequest) (workflows.RepositoryUsage, error) {
	var u workflows.RepositoryUsage
	err := queryRunningAs(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), workflows.QueryUsage, &u, req)
	return u, err
}

// DrainPool starts draining a pool, or every pool of req.Agent; a pool
// ends when its runners are gone, and the repository's workflow with its
// last pool.
func (t *TemporalRepositories) DrainPool(ctx context.Context, owner, repo string, req workflows.DrainRequest) (workflows.RepositoryView, error) {
	var v workflows.RepositoryView
	err := runUpdate(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), workflows.UpdateDrain, req, &v)
	return v, err
}

// List returns the running repositories from the visibility store's memos:
// their pools without runners and queue.
func (t *TemporalRepositories) List(ctx context.Context, limit int, cursor, agent string) ([]workflows.RepositoryView, string, error) {
	execs, next, err := listRunning(ctx, t.Client, t.Cursors, t.Namespace, workflows.RepositoryWorkflowName, agent, limit, cursor)
	if err != nil {
		return nil, "", err
	}
	repos := make([]workflows.RepositoryView, 0, len(execs))
	for _, e := range execs {
		v, err := repositoryMemo(t.Converter, e)
		if err != nil {
			return nil, "", err
		}
		repos = append(repos, v)
	}
	return repos, next, nil
}

// repositoryMemo decodes a repository's memo. A run from before several
// pools carries its one pool's view, which is the default pool; a run that
// has not published yet carries none.
func repositoryMemo(dc converter.DataConverter, e *workflowpb.WorkflowExecutionInfo) (workflows.RepositoryView, error) {
	id := e.GetExecution().GetWorkflowId()
	v := workflows.RepositoryView{Repository: strings.TrimPrefix(id, "garo/repo/"), Pools: []workflows.PoolView{}}
	var raw map[string]json.RawMessage
	found, err := memoSummary(dc, e, &raw)
	if err != nil || !found {
		return v, err
	}
	if _, several := raw["pools"]; several {
		_, err = memoSummary(dc, e, &v)
		return v, err
	}
	var p workflows.PoolView
	if _, err := memoSummary(dc, e, &p); err != nil {
		return v, err
	}
	if p.Repository != "" {
		v.Repository = p.Repository
	}
	if p.Config.Agent == "" {
		return v, nil // not configured yet
	}
	p.Pool = workflows.DefaultPool
	v.Pools = []workflows.PoolView{p}
	return v, nil
}

// TemporalJobs delivers job events as signals to repository workflows. It
// remembers the repositories whose event Temporal refused, and ResyncRefused
// asks each of them to reconcile with GitHub once Temporal takes signals
// again: GitHub does not send a failed delivery again by itself.
type TemporalJobs struct {
	Client client.Client

	mu sync.Mutex
	// refused are the workflow ids whose event Temporal refused, with
	// when it first did.
	refused map[string]time.Time
}

// maxRefused bounds the repositories remembered for a resync.
const maxRefused = 10000

// SignalJob signals the repository owner/repo; ErrNotFound when it has no
// pool.
func (t *TemporalJobs) SignalJob(ctx context.Context, owner, repo string, ev workflows.JobEvent) error {
	id := workflows.RepositoryWorkflowID(owner, repo)
	if err := t.Client.SignalWorkflow(ctx, id, "", workflows.SignalJob, ev); err != nil {
		err = mapTemporalError(err)
		if !errors.Is(err, ErrNotFound) {
			t.mu.Lock()
			if t.refused == nil {
				t.refused = map[string]time.Time{}
			}
			if _, ok := t.refused[id]; !ok && len(t.refused) < maxRefused {
				t.refused[id] = time.Now()
			}
			t.mu.Unlock()
		}
		return fmt.Errorf("signal job %d to %s/%s: %w", ev.JobID, owner, repo, err)
	}
	return nil
}

// ResyncRefused signals resync, every interval until ctx ends, to each
// repository whose job event was refused, until one is taken (or the
// repository has no pool any more). The signal asks the repository to have
// GitHub redeliver what failed since a minute before the first refusal.
func (t *TemporalJobs) ResyncRefused(ctx context.Context, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		ids := slices.Sorted(maps.Keys(t.refused))
		firsts := maps.Clone(t.refused)
		t.mu.Unlock()
		for _, id := range ids {
			since := firsts[id].Add(-time.Minute).UTC()
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := mapTemporalError(t.Client.SignalWorkflow(sctx, id, "", workflows.SignalResync,
				workflows.ResyncRequest{Reason: "a webhook was refused while Temporal was unavailable", FailedSince: &since}))
			cancel()
			if err != nil && !errors.Is(err, ErrNotFound) {
				break // Temporal is still away: the next tick tries again
			}
			t.mu.Lock()
			delete(t.refused, id)
			t.mu.Unlock()
			if err == nil {
				log.Info("Repository asked to reconcile with GitHub: a webhook of it was refused while Temporal was unavailable",
					"workflow", id)
			}
		}
	}
}
