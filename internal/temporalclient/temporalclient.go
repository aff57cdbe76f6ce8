// Package temporalclient builds Temporal client options from Garo's flags:
// frontend address, namespace, mTLS and API key; and dials it and queries
// running workflows with a client.
package temporalclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/garo-run/garo/internal/backoff"
	"github.com/garo-run/garo/internal/payloadcrypt"
)

// Options selects and authenticates a Temporal frontend.
type Options struct {
	Address       string
	Namespace     string
	TLS           bool
	TLSCert       string
	TLSKey        string
	TLSCA         string
	TLSServerName string
	APIKeyFile    string
	// APIKey is read from the environment (GARO_TEMPORAL_API_KEY), never
	// from a flag, so that it does not show in process listings.
	APIKey string
	// PayloadKeysFile, when set, encrypts every payload (package
	// payloadcrypt); every process of a deployment needs the same keys.
	PayloadKeysFile string
}

// Register adds the Temporal flags to fs.
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.Address, "temporal-address", "localhost:7233", "Temporal frontend host:port")
	fs.StringVar(&o.Namespace, "temporal-namespace", "default", "Temporal namespace")
	fs.BoolVar(&o.TLS, "temporal-tls", false, "connect with TLS (implied by the other TLS options and by an API key)")
	fs.StringVar(&o.TLSCert, "temporal-tls-cert", "", "client certificate PEM file for mTLS")
	fs.StringVar(&o.TLSKey, "temporal-tls-key", "", "client private key PEM file for mTLS")
	fs.StringVar(&o.TLSCA, "temporal-tls-ca", "", "CA bundle PEM file that signed the frontend's certificate (default: system roots)")
	fs.StringVar(&o.TLSServerName, "temporal-tls-server-name", "", "server name to verify in the frontend's certificate")
	fs.StringVar(&o.APIKeyFile, "temporal-api-key-file", "", "file holding a Temporal API key (or set GARO_TEMPORAL_API_KEY)")
	fs.StringVar(&o.PayloadKeysFile, "payload-keys-file", "", "encrypt Temporal payloads (AES-256-GCM) with the keys of this file, ID=BASE64 a line, the first encrypting; the server, agents and garo codec-server need the same file")
}

// ClientOptions turns o into client options for a process called identity.
func (o Options) ClientOptions(identity string, logger *slog.Logger) (client.Options, error) {
	opts := client.Options{
		HostPort:  o.Address,
		Namespace: o.Namespace,
		Identity:  identity,
		Logger:    tlog.NewStructuredLogger(logger),
	}
	key := o.APIKey
	if o.APIKeyFile != "" {
		b, err := os.ReadFile(o.APIKeyFile)
		if err != nil {
			return opts, fmt.Errorf("read Temporal API key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(key)
	}
	tlsCfg, err := o.tlsConfig(key != "")
	if err != nil {
		return opts, err
	}
	opts.ConnectionOptions.TLS = tlsCfg
	if o.PayloadKeysFile != "" {
		codec, err := payloadcrypt.Load(o.PayloadKeysFile)
		if err != nil {
			return opts, err
		}
		opts.DataConverter, opts.FailureConverter = codec.DataConverter(), codec.Failures()
	}
	return opts, nil
}

func (o Options) tlsConfig(apiKey bool) (*tls.Config, error) {
	if !o.TLS && !apiKey && o.TLSCert == "" && o.TLSKey == "" && o.TLSCA == "" && o.TLSServerName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("--temporal-tls-cert and --temporal-tls-key go together")
	}
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load Temporal client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("read Temporal CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in Temporal CA file %s", o.TLSCA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Dial connects to Temporal, retrying with backoff while the frontend is
// unreachable, until ctx ends. Each failed attempt is logged.
func Dial(ctx context.Context, opts client.Options, logger *slog.Logger) (client.Client, error) {
	var c client.Client
	err := backoff.Retry(ctx, backoff.Policy{First: 500 * time.Millisecond, Max: 15 * time.Second}, func() (err error) {
		c, err = client.DialContext(ctx, opts)
		return err
	}, func(err error, wait time.Duration) {
		logger.Warn("Temporal unreachable; retrying", "address", opts.HostPort, "namespace", opts.Namespace, "retryIn", wait, "error", err)
	})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
	}
	return c, nil
}
