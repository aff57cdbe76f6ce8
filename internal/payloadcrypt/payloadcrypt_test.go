package payloadcrypt

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

func key(t *testing.T, id string) Key {
	t.Helper()
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	return Key{ID: id, Raw: raw}
}

// TestPayloadsAreOpaqueAndRoundTripAcrossARotation: a value is encrypted
// (nothing of it readable), decrypts to itself, still decrypts once a new
// key encrypts, and a tampered payload or an unknown key is an error.
func TestPayloadsAreOpaqueAndRoundTripAcrossARotation(t *testing.T) {
	k1, k2 := key(t, "k1"), key(t, "k2")
	old, err := New([]Key{k1})
	require.NoError(t, err)
	secret := map[string]string{"repository": "octo/secret-project"}
	p, err := old.DataConverter().ToPayload(secret)
	require.NoError(t, err)
	assert.Equal(t, Encoding, string(p.Metadata[converter.MetadataEncoding]))
	assert.Equal(t, "k1", string(p.Metadata["encryption-key-id"]))
	assert.False(t, bytes.Contains(p.Data, []byte("secret-project")), "the value is not readable")
	assert.False(t, bytes.Contains(p.Data, []byte("json/plain")), "nor its encoding")

	rotated, err := New([]Key{k2, k1})
	require.NoError(t, err)
	var got map[string]string
	require.NoError(t, rotated.DataConverter().FromPayload(p, &got), "an old payload reads after a rotation")
	assert.Equal(t, secret, got)
	p2, err := rotated.DataConverter().ToPayload(secret)
	require.NoError(t, err)
	assert.Equal(t, "k2", string(p2.Metadata["encryption-key-id"]), "the first key encrypts")
	_, err = old.Decode([]*commonpb.Payload{p2})
	assert.ErrorContains(t, err, `key "k2"`, "a key it lacks")

	p2.Data[len(p2.Data)-1] ^= 1
	assert.Error(t, rotated.DataConverter().FromPayload(p2, &got), "a tampered payload")
	p2.Data[len(p2.Data)-1] ^= 1
	p2.Metadata["encryption-key-id"] = []byte("k1")
	assert.Error(t, rotated.DataConverter().FromPayload(p2, &got), "a payload relabelled with another key")

	plain, err := converter.GetDefaultDataConverter().ToPayload("plain")
	require.NoError(t, err)
	var s string
	require.NoError(t, rotated.DataConverter().FromPayload(plain, &s), "an unencrypted payload (from before) passes")
	assert.Equal(t, "plain", s)
}

func TestLoadReadsKeysAndRefusesBadOnesWithoutShowingThem(t *testing.T) {
	dir := t.TempDir()
	k := key(t, "2026-11")
	good := "# newest first\n2026-11=" + base64.StdEncoding.EncodeToString(k.Raw) + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "keys"), []byte(good), 0o600))
	c, err := Load(filepath.Join(dir, "keys"))
	require.NoError(t, err)
	assert.Equal(t, "2026-11", c.current)

	short := "k=" + base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!")) + "\n"
	for what, content := range map[string]string{"no key": "# none\n", "short key": short, "not base64": "k=not-base64-secret!\n",
		"same id twice": good + good} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bad"), []byte(content), 0o600))
		_, err := Load(filepath.Join(dir, "bad"))
		require.Error(t, err, what)
		assert.NotContains(t, err.Error(), "not-base64-secret", "%s: the key is not in the error", what)
	}
}
