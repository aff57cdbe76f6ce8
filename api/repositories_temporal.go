package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

// LegacyRepositories reads the RepositoryWorkflows of the releases before
// pools (one workflow for all the pools of a repository), until each has
// handed its pools over to PoolWorkflows (Migrate).
type LegacyRepositories struct {
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
func (t *LegacyRepositories) ConfigurePool(ctx context.Context, owner, repo string, req workflows.ConfigureRequest) (workflows.PoolView, error) {
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
func (t *LegacyRepositories) Get(ctx context.Context, owner, repo string) (workflows.RepositoryView, error) {
	var v workflows.RepositoryView
	err := queryRunning(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), &v)
	return v, err
}

// Usage asks the repository's workflow for its usage (QueryUsage).
func (t *LegacyRepositories) Usage(ctx context.Context, owner, repo string, req workflows.UsageRequest) (workflows.RepositoryUsage, error) {
	var u workflows.RepositoryUsage
	err := queryRunningAs(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), workflows.QueryUsage, &u, req)
	return u, err
}

// DrainPool starts draining a pool, or every pool of req.Agent; a pool
// ends when its runners are gone, and the repository's workflow with its
// last pool.
func (t *LegacyRepositories) DrainPool(ctx context.Context, owner, repo string, req workflows.DrainRequest) (workflows.RepositoryView, error) {
	var v workflows.RepositoryView
	err := runUpdate(ctx, t.Client, workflows.RepositoryWorkflowID(owner, repo), workflows.UpdateDrain, req, &v)
	return v, err
}

// List returns the running repositories from the visibility store's memos:
// their pools without runners and queue.
func (t *LegacyRepositories) List(ctx context.Context, limit int, cursor, agent string) ([]workflows.RepositoryView, string, error) {
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

// TemporalJobs delivers job events as signals to the RepositoryWorkflows
// of the releases before pools, until they have handed their pools over.
// It remembers the repositories whose event Temporal refused: its
// ResyncRefused asks each to reconcile once Temporal takes signals again.
type TemporalJobs struct {
	Client client.Client
	refusals
}

// SignalJob signals the repository owner/repo; ErrNotFound when it has no
// pool.
func (t *TemporalJobs) SignalJob(ctx context.Context, owner, repo string, ev workflows.JobEvent) error {
	id := workflows.RepositoryWorkflowID(owner, repo)
	if err := t.Client.SignalWorkflow(ctx, id, "", workflows.SignalJob, ev); err != nil {
		err = mapTemporalError(err)
		if !errors.Is(err, ErrNotFound) {
			t.remember(id)
		}
		return fmt.Errorf("signal job %d to %s/%s: %w", ev.JobID, owner, repo, err)
	}
	return nil
}

// ResyncRefused asks, every interval until ctx ends, each repository
// whose job event was refused to reconcile (refusals.resync).
func (t *TemporalJobs) ResyncRefused(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t.resync(ctx, t.Client, interval, log)
}

// migrateWait bounds how long Migrate waits for a repository to hand its
// pools over.
const migrateWait = 30 * time.Second

// Migrate has the RepositoryWorkflow of owner/repo (of a release before
// pools), if it is running, hand its pools over to PoolWorkflows, and
// waits until it has ended.
func (t *LegacyRepositories) Migrate(ctx context.Context, owner, repo string) error {
	id := workflows.RepositoryWorkflowID(owner, repo)
	err := mapTemporalError(t.Client.SignalWorkflow(ctx, id, "", workflows.SignalMigrate, nil))
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("hand repository %s/%s over to pools: %w", owner, repo, err)
	}
	deadline := time.Now().Add(migrateWait)
	for {
		running, err := temporalclient.Running(ctx, t.Client, id)
		if err != nil {
			return mapTemporalError(err)
		}
		if !running {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: repository %s/%s is still handing its pools over", ErrUnavailable, owner, repo)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// MigrateAll asks every running RepositoryWorkflow (of a release before
// pools) to hand its pools over to PoolWorkflows, and returns how many it
// asked. It goes on past one that refuses.
func (t *LegacyRepositories) MigrateAll(ctx context.Context, log *slog.Logger) (int, error) {
	var ids []string
	if err := temporalclient.EachWorkflow(ctx, t.Client, t.Namespace, workflows.RunningQuery(workflows.RepositoryWorkflowName, ""),
		func(id string) { ids = append(ids, id) }); err != nil {
		return 0, fmt.Errorf("list repositories to hand over to pools: %w", err)
	}
	n := 0
	for _, id := range ids {
		if err := t.Client.SignalWorkflow(ctx, id, "", workflows.SignalMigrate, nil); err != nil {
			log.Warn("Repository not asked to hand its pools over; it is asked again at the next start or change", "workflow", id, "error", err)
			continue
		}
		n++
	}
	if n > 0 {
		log.Info("Repositories of the release before pools asked to hand their pools over", "repositories", n)
	}
	return n, nil
}
