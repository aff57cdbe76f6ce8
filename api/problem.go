package api

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem details object. Type is stable per kind of
// error, so clients can branch on it.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// Problem types.
const (
	ProblemInvalidRequest   = "urn:garo:problem:invalid-request"
	ProblemUnauthorized     = "urn:garo:problem:unauthorized"
	ProblemForbidden        = "urn:garo:problem:forbidden"
	ProblemNotFound         = "urn:garo:problem:not-found"
	ProblemMethodNotAllowed = "urn:garo:problem:method-not-allowed"
	ProblemConflict         = "urn:garo:problem:conflict"
	ProblemUnregistered     = "urn:garo:problem:unregistered"
	ProblemTooLarge         = "urn:garo:problem:payload-too-large"
	ProblemUnsupportedMedia = "urn:garo:problem:unsupported-media-type"
	ProblemUnavailable      = "urn:garo:problem:unavailable"
	ProblemInternal         = "urn:garo:problem:internal"
	ProblemTooManyRequests  = "urn:garo:problem:too-many-requests"
)

var problemTitles = map[string]string{
	ProblemInvalidRequest:   "Invalid request",
	ProblemUnauthorized:     "Unauthorized",
	ProblemForbidden:        "Forbidden",
	ProblemNotFound:         "Not found",
	ProblemMethodNotAllowed: "Method not allowed",
	ProblemConflict:         "Conflict",
	ProblemUnregistered:     "Agent unregistered",
	ProblemTooLarge:         "Payload too large",
	ProblemUnsupportedMedia: "Unsupported media type",
	ProblemUnavailable:      "Service unavailable",
	ProblemInternal:         "Internal error",
	ProblemTooManyRequests:  "Too many requests",
}

// writeProblem answers r with a problem of the given type and status.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{
		Type:     typ,
		Title:    problemTitles[typ],
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
