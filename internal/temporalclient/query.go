package temporalclient

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// ErrNotRunning: the workflow exists, but its latest run has closed.
var ErrNotRunning = errors.New("workflow is not running")

// QueryRunning answers the named query of workflow id's running run into
// out. A closed run is not queried (that would replay its whole history on
// a worker): it is ErrNotRunning. A workflow that never existed is the
// client's *serviceerror.NotFound.
func QueryRunning(ctx context.Context, c client.Client, id, query string, out any) error {
	d, err := c.DescribeWorkflow(ctx, id, "")
	if err != nil {
		return err
	}
	if d.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return ErrNotRunning
	}
	v, err := c.QueryWorkflow(ctx, id, "", query)
	if err != nil {
		return err
	}
	if err := v.Get(out); err != nil {
		return fmt.Errorf("decode %s of %s: %w", query, id, err)
	}
	return nil
}
