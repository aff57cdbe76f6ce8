package devcerts

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCertificatesMakeAnMTLSConnectionThatNamesTheAgent: a client with an
// agent's certificate reaches a server with the frontend's over mutual
// TLS, and the server sees the agent's identity; the CA is not
// overwritten, and private keys are the owner's alone.
func TestCertificatesMakeAnMTLSConnectionThatNamesTheAgent(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Write(Set{Dir: dir, Agents: []string{"lab-1"}}))
	require.ErrorContains(t, Write(Set{Dir: dir}), "already holds a CA")

	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(ca))
	frontend, err := tls.LoadX509KeyPair(filepath.Join(dir, "frontend.pem"), filepath.Join(dir, "frontend-key.pem"))
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{frontend},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			seen <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			seen <- err.Error()
			return
		}
		seen <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()

	for _, file := range []string{"agent-lab-1", "server", "admin"} {
		info, err := os.Stat(filepath.Join(dir, file+"-key.pem"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), file)
	}
	agent, err := tls.LoadX509KeyPair(filepath.Join(dir, "agent-lab-1.pem"), filepath.Join(dir, "agent-lab-1-key.pem"))
	require.NoError(t, err)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{Certificates: []tls.Certificate{agent}, RootCAs: pool,
		ServerName: "localhost", MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	require.NoError(t, conn.Handshake())
	defer conn.Close()
	assert.Equal(t, "agent:lab-1", <-seen)
}
