package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/internal/httpserve"
	"github.com/garo-run/garo/internal/payloadcrypt"
	"github.com/go-chi/cors"
)

// runCodecServer serves Temporal's codec endpoints (POST /decode and
// /encode) with the payload keys, so that the Web UI and the temporal CLI
// show encrypted histories in clear to those who may read them.
func runCodecServer(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := newFlagSet("codec-server", stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve /decode and /encode on")
	keys := fs.String("payload-keys-file", "", "the payload keys file of the server and agents (ID=BASE64 a line)")
	tokenFile := fs.String("token-file", "", "file holding a bearer token every request must carry (or set GARO_CODEC_TOKEN); none when unset")
	var origins envflag.StringList
	fs.Var(&origins, "cors-origin", "an origin allowed to call from a browser, such as the Web UI's http://localhost:8233 (comma-separated or repeated)")
	var lf logFlags
	lf.register(fs)
	if err := envflag.Parse(fs, "GARO", args, getenv); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	if *keys == "" {
		return errors.New("no payload keys: set --payload-keys-file")
	}
	codec, err := payloadcrypt.Load(*keys)
	if err != nil {
		return err
	}
	token, err := secret(*tokenFile, "GARO_CODEC_TOKEN", getenv)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: codecHandler(codec, token, origins, log), ReadHeaderTimeout: 10 * time.Second}
	log.Info("Codec server listening", "addr", ln.Addr().String(), "corsOrigins", []string(origins), "token", token != "")
	return httpserve.Serve(ctx, srv, ln, 5*time.Second)
}

// codecHandler answers CORS preflights of the allowed origins, checks the
// token when one is set, bounds bodies to 4 MiB, and decodes or encodes.
func codecHandler(codec *payloadcrypt.Codec, token string, origins []string, log *slog.Logger) http.Handler {
	inner := converter.NewPayloadCodecHTTPHandler(codec)
	allowed := cors.Handler(cors.Options{AllowedOrigins: origins, AllowedMethods: []string{http.MethodPost},
		AllowedHeaders: []string{"Content-Type", "X-Namespace", "Authorization"}})
	return allowed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
		log.Debug("Codec request", "path", r.URL.Path, "namespace", r.Header.Get("X-Namespace"))
		inner.ServeHTTP(w, r)
	}))
}
