package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/garo-run/garo/workflows"
)

// Errors the backends return for the API to map.
var (
	ErrNotFound = errors.New("not found")
	// ErrUnregistered: the agent was registered once and has been
	// unregistered since; it must not carry on as if nothing happened.
	ErrUnregistered = errors.New("agent was unregistered")
	ErrUnavailable  = errors.New("temporal unavailable")
	ErrBadCursor    = errors.New("invalid cursor")
)

// RejectedError is an update that the workflow's validator refused.
type RejectedError struct {
	Type    string // one of workflows.ErrType*
	Message string
}

func (e *RejectedError) Error() string { return e.Message }

// rejection is how the API answers an update rejected with an error type.
type rejection struct {
	status  int
	problem string
}

// rejections maps each error type of the workflows to one answer. An
// error type missing here is a bug: it answers 500 and is logged.
// statusClientClosedRequest is logged for a request whose client went away
// before its answer (nginx's 499; the client never sees it).
const statusClientClosedRequest = 499

var rejections = map[string]rejection{
	workflows.ErrTypeInvalidRequest: {http.StatusUnprocessableEntity, ProblemInvalidRequest},
	workflows.ErrTypeNotFound:       {http.StatusNotFound, ProblemNotFound},
	workflows.ErrTypeConflict:       {http.StatusConflict, ProblemConflict},
	workflows.ErrTypeNotRegistered:  {http.StatusNotFound, ProblemNotFound},
	workflows.ErrTypeUnregistering:  {http.StatusConflict, ProblemConflict},
	workflows.ErrTypeDraining:       {http.StatusConflict, ProblemConflict},
	workflows.ErrTypeClosing:        {http.StatusServiceUnavailable, ProblemUnavailable},
}

// backendError maps an error of a backend to a problem; what says what
// failed, e.g. "get agent lab-1".
func (h *handlers) backendError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var rej *RejectedError
	switch {
	case errors.Is(err, ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, ProblemNotFound, what+": not found")
	case errors.Is(err, ErrUnregistered):
		writeProblem(w, r, http.StatusGone, ProblemUnregistered, what+": the agent was unregistered; register it again to serve")
	case errors.Is(err, ErrBadCursor):
		writeProblem(w, r, http.StatusBadRequest, ProblemInvalidRequest, "invalid cursor")
	case errors.As(err, &rej):
		if ans, ok := rejections[rej.Type]; ok {
			writeProblem(w, r, ans.status, ans.problem, what+": "+rej.Message)
			return
		}
		h.log.Error("Backend rejected a request with an unknown error type", "op", what, "type", rej.Type, "error", err)
		writeProblem(w, r, http.StatusInternalServerError, ProblemInternal, what+" failed")
	case r.Context().Err() != nil:
		// The client went away before the answer: nothing failed here.
		h.log.Info("Client gave up before the answer", "op", what, "error", r.Context().Err())
		w.WriteHeader(statusClientClosedRequest)
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("Backend unavailable", "op", what, "error", err)
		writeProblem(w, r, http.StatusServiceUnavailable, ProblemUnavailable, what+": Temporal is unavailable; retry later")
	default:
		h.log.Error("Backend failed", "op", what, "error", err)
		writeProblem(w, r, http.StatusInternalServerError, ProblemInternal, what+" failed")
	}
}
