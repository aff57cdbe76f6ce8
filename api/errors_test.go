package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
)

// TestAClientThatGivesUpIsNotAnError: a read that outlives its client (as
// the first reads after a restart once did) is logged as the client's
// choice, not as a failure of the server.
func TestAClientThatGivesUpIsNotAnError(t *testing.T) {
	var logs bytes.Buffer
	h := &handlers{log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/api/v1/repositories/o/r", nil).WithContext(ctx)
	w := httptest.NewRecorder()
	h.backendError(w, r, "get repository o/r", context.Canceled)
	assert.Equal(t, statusClientClosedRequest, w.Code)
	assert.NotContains(t, logs.String(), "level=ERROR")
	assert.Contains(t, logs.String(), "Client gave up")

	logs.Reset()
	w = httptest.NewRecorder()
	h.backendError(w, httptest.NewRequest("GET", "/api/v1/repositories/o/r", nil), "get repository o/r", context.Canceled)
	assert.Equal(t, 500, w.Code, "the server's own failure is still one")
	assert.Contains(t, logs.String(), "level=ERROR")
}

// TestAnUpdateIsTriedAgainWhileItsWorkflowTaskFailed: Temporal answers
// WorkflowNotReady when the task that carried an update failed (a signal
// came as the workflow completed its task); the update is sent again,
// while any other answer is final.
func TestAnUpdateIsTriedAgainWhileItsWorkflowTaskFailed(t *testing.T) {
	calls := 0
	err := retryNotReady(context.Background(), func() error {
		if calls++; calls < 3 {
			return serviceerror.NewWorkflowNotReady("Unable to perform workflow execution update due to unexpected workflow task failure.")
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 3, calls)

	calls = 0
	err = retryNotReady(context.Background(), func() error {
		calls++
		return serviceerror.NewInvalidArgument("bad")
	})
	require.Error(t, err)
	assert.Equal(t, 1, calls)
}
