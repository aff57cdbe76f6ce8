// Package httpserve runs an HTTP server until its context ends, then
// shuts it down gracefully.
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on ln until ctx ends, then gives the requests in
// flight up to grace to finish. It returns nil after a shutdown, or the
// error that stopped the server.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
			return
		}
		shut, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	err := srv.Serve(ln)
	close(stopped)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
