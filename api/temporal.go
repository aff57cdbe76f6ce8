package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/garo-run/garo/internal/temporalclient"
	"github.com/garo-run/garo/workflows"
)

// This file holds what the Temporal backends of the API share: updates,
// queries, visibility listings and the mapping of Temporal's errors. The
// backends are in agents_temporal.go, repositories_temporal.go and
// tokens_temporal.go.

// runUpdate sends an update to the workflow id and waits for its result.
func runUpdate(ctx context.Context, c client.Client, id, update string, arg, out any) error {
	opts := updateOptions(id, update, arg)
	return retryNotReady(ctx, func() error {
		h, err := c.UpdateWorkflow(ctx, opts)
		if err != nil {
			return err
		}
		return h.Get(ctx, out)
	})
}

// retryNotReady calls f again, a few times, while Temporal answers that
// the update could not run because the workflow task that carried it
// failed (a signal came as the workflow was completing its task): a
// transient answer, not the caller's error. The update keeps its id, so
// one that did run is not run twice.
func retryNotReady(ctx context.Context, f func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = f()
		var notReady *serviceerror.WorkflowNotReady
		if !errors.As(err, &notReady) || attempt == 5 {
			return mapTemporalError(err)
		}
		select {
		case <-ctx.Done():
			return mapTemporalError(err)
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

// updateOptions sends update with arg to workflow id and waits for its
// result. Its id is made once, so that a try again of the same update is
// not run twice.
func updateOptions(id, update string, arg any) client.UpdateWorkflowOptions {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return client.UpdateWorkflowOptions{WorkflowID: id, UpdateID: hex.EncodeToString(b), UpdateName: update,
		Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted}
}

// runUpdateWithStart sends an update to the workflow opts.ID, starting it
// on the server's queue first if it is not running, in one call, and
// waits for the update's result.
func runUpdateWithStart(ctx context.Context, c client.Client, opts client.StartWorkflowOptions, workflowType string, input any,
	update string, arg, out any) error {
	opts.TaskQueue = workflows.ServerTaskQueue
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	uopts := updateOptions(opts.ID, update, arg)
	return retryNotReady(ctx, func() error {
		// A with-start operation serves one call: a new one each try.
		h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: c.NewWithStartWorkflowOperation(opts, workflowType, input),
			UpdateOptions:          uopts,
		})
		if err != nil {
			return err
		}
		return h.Get(ctx, out)
	})
}

// queryRunning answers the state query of a running workflow into out;
// ErrNotFound when the workflow is not running.
func queryRunning(ctx context.Context, c client.Client, id string, out any) error {
	return queryRunningAs(ctx, c, id, workflows.QueryState, out)
}

// queryRunningAs answers the named query of a running workflow, with
// args, into out.
func queryRunningAs(ctx context.Context, c client.Client, id, query string, out any, args ...any) error {
	err := temporalclient.QueryRunning(ctx, c, id, query, out, args...)
	if errors.Is(err, temporalclient.ErrNotRunning) {
		return ErrNotFound
	}
	return mapTemporalError(err)
}

// listRunning returns one page of the running workflows of a type from the
// visibility store; cursor and the returned cursor seal its page token
// (Cursors): a cursor this server did not make for this listing is
// ErrBadCursor before any call to Temporal.
func listRunning(ctx context.Context, c client.Client, cursors *Cursors, namespace, workflowType, agent string, limit int, cursor string) ([]*workflowpb.WorkflowExecutionInfo, string, error) {
	scope := workflowType + "\x00" + agent
	token, err := cursors.Open(scope, cursor)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace:     namespace,
		PageSize:      int32(limit),
		NextPageToken: token,
		Query:         workflows.RunningQuery(workflowType, agent),
	})
	if err != nil {
		var inv *serviceerror.InvalidArgument
		if cursor != "" && errors.As(err, &inv) {
			return nil, "", ErrBadCursor
		}
		return nil, "", mapTemporalError(err)
	}
	return resp.Executions, cursors.Seal(scope, resp.NextPageToken), nil
}

// memoSummary decodes the summary memo of e into out with dc (Temporal's
// default when nil); false when it has none yet.
func memoSummary(dc converter.DataConverter, e *workflowpb.WorkflowExecutionInfo, out any) (bool, error) {
	p, ok := e.GetMemo().GetFields()[workflows.MemoSummary]
	if !ok {
		return false, nil
	}
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	if err := dc.FromPayload(p, out); err != nil {
		return false, fmt.Errorf("decode memo of %s: %w", e.GetExecution().GetWorkflowId(), err)
	}
	return true, nil
}

// mapTemporalError turns Temporal's errors into the API's.
func mapTemporalError(err error) error {
	if err == nil {
		return nil
	}
	var (
		notFound *serviceerror.NotFound
		unavail  *serviceerror.Unavailable
		deadline *serviceerror.DeadlineExceeded
		appErr   *temporal.ApplicationError
	)
	switch {
	case errors.As(err, &notFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.As(err, &appErr):
		return &RejectedError{Type: appErr.Type(), Message: appErr.Message()}
	case errors.As(err, &unavail), errors.As(err, &deadline):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
