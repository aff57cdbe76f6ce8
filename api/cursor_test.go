package api

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/workflows"
)

// TestCursorsAreOpaqueAndAuthenticated: a cursor opens only on the listing
// it was made for, with the same key; a forged, altered or foreign one is
// ErrBadCursor.
func TestCursorsAreOpaqueAndAuthenticated(t *testing.T) {
	c := NewCursors("admin-token")
	cur := c.Seal("repos\x00", []byte("temporal page token"))
	tok, err := c.Open("repos\x00", cur)
	require.NoError(t, err)
	assert.Equal(t, "temporal page token", string(tok))
	assert.Equal(t, cur, NewCursors("admin-token").Seal("repos\x00", []byte("temporal page token")), "every replica makes the same")
	assert.Empty(t, c.Seal("repos\x00", nil), "no token, no cursor")

	for name, bad := range map[string]string{
		"forged":         "AAAA",
		"json":           "eyJhIjoxfQ",
		"altered token":  "X" + cur[1:],
		"altered mac":    cur[:len(cur)-1] + "A",
		"no mac":         strings.Split(cur, ".")[0],
		"other listing":  NewCursors("admin-token").Seal("agents\x00", []byte("temporal page token")),
		"other key":      NewCursors("another").Seal("repos\x00", []byte("temporal page token")),
		"empty token":    "." + strings.Split(cur, ".")[1],
		"huge":           strings.Repeat("A", 9000) + ".A",
		"not base64 url": "a+b/c.d+e",
	} {
		_, err := c.Open("repos\x00", bad)
		assert.ErrorIs(t, err, ErrBadCursor, name)
	}
}

// TestAForgedCursorNeverReachesTemporal: listRunning refuses a forged
// cursor before any call (its Temporal client here is nil).
func TestAForgedCursorNeverReachesTemporal(t *testing.T) {
	for _, bad := range []string{"AAAA", "eyJhIjoxfQ"} {
		_, _, err := listRunning(context.Background(), nil, NewCursors("k"), "ns", workflows.RepositoryWorkflowName, "", 10, bad)
		assert.ErrorIs(t, err, ErrBadCursor)
	}
}

// FuzzCursorOpen: no input makes Open panic, and only what Seal made for
// the scope opens.
func FuzzCursorOpen(f *testing.F) {
	c := NewCursors("k")
	for _, s := range []string{"", "AAAA", "eyJhIjoxfQ", c.Seal("s", []byte("tok")), "a.b", "..", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		tok, err := c.Open("s", cursor)
		if err == nil && cursor != "" && c.Seal("s", tok) != cursor {
			t.Fatalf("Open(%q) accepted a cursor Seal did not make", cursor)
		}
	})
}
