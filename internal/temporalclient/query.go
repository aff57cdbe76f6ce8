package temporalclient

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// ErrNotRunning: the workflow exists, but its latest run has closed.
var ErrNotRunning = errors.New("workflow is not running")

// QueryRunning answers the named query of workflow id's running run into
// out. A closed run is not queried (that would replay its whole history on
// a worker): it is ErrNotRunning. A workflow that never existed is the
// client's *serviceerror.NotFound.
func QueryRunning(ctx context.Context, c client.Client, id, query string, out any, args ...any) error {
	d, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return err
	}
	if d.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return ErrNotRunning
	}
	v, err := c.QueryWorkflow(ctx, id, "", query, args...)
	if err != nil {
		return err
	}
	if err := v.Get(out); err != nil {
		return fmt.Errorf("decode %s of %s: %w", query, id, err)
	}
	return nil
}

// Running reports whether workflow id has a running run; a workflow that
// never existed is not running.
func Running(ctx context.Context, c client.Client, id string) (bool, error) {
	d, err := c.DescribeWorkflow(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return false, nil
	case err != nil:
		return false, err
	}
	return d.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// EachWorkflow calls f with the id of every workflow the visibility query
// lists, a page of 1000 at a time.
func EachWorkflow(ctx context.Context, c client.Client, namespace, query string, f func(id string)) error {
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, NextPageToken: token, PageSize: 1000, Query: query,
		})
		if err != nil {
			return err
		}
		for _, e := range resp.Executions {
			f(e.GetExecution().GetWorkflowId())
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return nil
		}
	}
}
