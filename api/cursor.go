package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Cursors is how the API hands out Temporal's page tokens: opaque and
// authenticated. A cursor is the token and an HMAC of it and of the
// listing it pages (its scope), so that a forged or altered cursor, or
// one of another listing, is refused (400) before it reaches Temporal.
// Every replica of the server derives the same key (NewCursors), so a
// cursor from one is good on the others.
type Cursors struct {
	key []byte
}

// NewCursors derives the cursors' key from a secret every server replica
// shares (the bootstrap admin token): rotating it only ends the listings
// in progress.
func NewCursors(secret string) *Cursors {
	sum := sha256.Sum256([]byte("garo page cursor\x00" + secret))
	return &Cursors{key: sum[:]}
}

const cursorMACLen = 16

func (c *Cursors) mac(scope string, token []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write(token)
	return m.Sum(nil)[:cursorMACLen]
}

// Seal makes a cursor of a page token of the listing scope; "" for none.
func (c *Cursors) Seal(scope string, token []byte) string {
	if len(token) == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(token) + "." + base64.RawURLEncoding.EncodeToString(c.mac(scope, token))
}

// Open returns the page token of a cursor of the listing scope;
// ErrBadCursor for one this server did not make for it.
func (c *Cursors) Open(scope, cursor string) ([]byte, error) {
	if cursor == "" {
		return nil, nil
	}
	tok, sig, ok := strings.Cut(cursor, ".")
	if !ok || len(cursor) > 8192 {
		return nil, ErrBadCursor
	}
	token, err1 := base64.RawURLEncoding.Strict().DecodeString(tok)
	mac, err2 := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err1 != nil || err2 != nil || len(token) == 0 || !hmac.Equal(mac, c.mac(scope, token)) {
		return nil, ErrBadCursor
	}
	// The decoder skips \r and \n: only the cursor Seal made is taken.
	if base64.RawURLEncoding.EncodeToString(token) != tok || base64.RawURLEncoding.EncodeToString(mac) != sig {
		return nil, ErrBadCursor
	}
	return token, nil
}
