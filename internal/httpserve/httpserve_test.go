package httpserve

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeAnswersUntilItsContextEndsAndLetsARequestFinish: a request in
// flight when the context ends is answered, then Serve returns nil.
func TestServeAnswersUntilItsContextEndsAndLetsARequestFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	inFlight := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inFlight)
		time.Sleep(200 * time.Millisecond)
		w.WriteHeader(http.StatusTeapot)
	})}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, ln, 5*time.Second) }()
	answer := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			answer <- 0
			return
		}
		resp.Body.Close()
		answer <- resp.StatusCode
	}()
	<-inFlight
	cancel()
	assert.Equal(t, http.StatusTeapot, <-answer, "the request in flight is answered")
	assert.NoError(t, <-done)
}
