package temporalclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "garo-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certPath, keyPath
}

func TestPlainByDefault(t *testing.T) {
	o, err := Options{Address: "t:7233", Namespace: "ns"}.ClientOptions("id", quiet)
	require.NoError(t, err)
	assert.Equal(t, "t:7233", o.HostPort)
	assert.Equal(t, "ns", o.Namespace)
	assert.Nil(t, o.ConnectionOptions.TLS)
	assert.Nil(t, o.Credentials)
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	o, err := Options{Address: "t:7233", TLSCert: cert, TLSKey: key, TLSCA: cert, TLSServerName: "temporal.internal"}.ClientOptions("id", quiet)
	require.NoError(t, err)
	require.NotNil(t, o.ConnectionOptions.TLS)
	assert.Len(t, o.ConnectionOptions.TLS.Certificates, 1)
	assert.NotNil(t, o.ConnectionOptions.TLS.RootCAs)
	assert.Equal(t, "temporal.internal", o.ConnectionOptions.TLS.ServerName)
}

func TestTLSErrorsAreClear(t *testing.T) {
	dir := t.TempDir()
	cert, _ := writeCert(t, dir)
	_, err := Options{TLSCert: cert}.ClientOptions("id", quiet)
	assert.ErrorContains(t, err, "go together")
	_, err = Options{TLSCA: filepath.Join(dir, "missing.pem")}.ClientOptions("id", quiet)
	assert.ErrorContains(t, err, "read Temporal CA")
	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("not a cert"), 0o600))
	_, err = Options{TLSCA: junk}.ClientOptions("id", quiet)
	assert.ErrorContains(t, err, "no certificate")
}

func TestAPIKeyImpliesTLS(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(keyFile, []byte("  k-123\n"), 0o600))
	for _, o := range []Options{{APIKey: "k-123"}, {APIKeyFile: keyFile}} {
		co, err := o.ClientOptions("id", quiet)
		require.NoError(t, err)
		assert.NotNil(t, co.Credentials)
		assert.NotNil(t, co.ConnectionOptions.TLS, "an API key is never sent in the clear")
	}
	_, err := Options{APIKeyFile: filepath.Join(dir, "nope")}.ClientOptions("id", quiet)
	assert.ErrorContains(t, err, "API key")
}
