package workflows

import "go.temporal.io/sdk/temporal"

// Error types of the application errors that workflows answer updates
// with. Each has one meaning, and the API maps each to one status (in one
// table, api/errors.go). Those of one workflow only are in its contract.
const (
	// ErrTypeInvalidRequest: the request is malformed or out of range;
	// sending it again cannot succeed.
	ErrTypeInvalidRequest = "InvalidRequest"
	// ErrTypeNotFound: what the request names does not exist (a token, a
	// pool).
	ErrTypeNotFound = "NotFound"
	// ErrTypeConflict: what the request would create exists already.
	ErrTypeConflict = "Conflict"
)

// reject is the error an update validator refuses a request with.
func reject(errType, msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, errType, nil)
}

// invalidRequest turns a validation error into an ErrTypeInvalidRequest
// rejection; nil stays nil.
func invalidRequest(err error) error {
	if err == nil {
		return nil
	}
	return reject(ErrTypeInvalidRequest, err.Error())
}
