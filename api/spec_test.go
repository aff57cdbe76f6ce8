package api

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"
)

// specTransport checks every answer the tests get against openapi.yaml:
// its status must be documented for the route and its body must match
// the schema. The spec is the truth; a handler that strays fails here.
type specTransport struct {
	t      testing.TB
	router routers.Router
	base   http.RoundTripper
}

func newSpecClient(t testing.TB) *http.Client {
	t.Helper()
	return specClient(t, specRouter(t))
}

// specRouter finds the route of openapi.yaml a request takes.
func specRouter(t testing.TB) routers.Router {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPISpec())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(t.Context()))
	doc.Servers = nil // match the test server's address
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return router
}

// specClient is a client whose answers t checks against openapi.yaml.
func specClient(t testing.TB, router routers.Router) *http.Client {
	return &http.Client{Transport: &specTransport{t: t, router: router, base: http.DefaultTransport}}
}

func (s *specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return resp, nil // not a documented route (tests of unknown routes)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		s.t.Errorf("%s %s answered %d, which openapi.yaml does not allow: %v\n%s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}
