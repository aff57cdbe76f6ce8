// Package payloadcrypt encrypts Temporal payloads with AES-256-GCM, so
// that workflow inputs, results, signals and memos are opaque in
// Temporal's database and to anyone who reads histories without a key. A
// keys file names several keys; the first encrypts, every one decrypts:
// rotation adds a new first key and keeps the old until no history that
// needs it is left. garo codec-server decrypts for the Web UI.
package payloadcrypt

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	Encoding    = "binary/encrypted"
	metaKeyID   = "encryption-key-id"
	metaCipher  = "encryption-cipher"
	cipherName  = "AES256-GCM"
	maxKeyIDLen = 64
)

// Codec is a converter.PayloadCodec that encrypts with the first of its
// keys and decrypts with the one a payload names.
type Codec struct {
	current string
	keys    map[string]cipher.AEAD
}

// Key is one named 32-byte key.
type Key struct {
	ID  string
	Raw []byte
}

// New returns a codec of keys, the first of which encrypts.
func New(keys []Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("no payload key")
	}
	c := &Codec{current: keys[0].ID, keys: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if k.ID == "" || len(k.ID) > maxKeyIDLen || strings.ContainsAny(k.ID, "= \t") {
			return nil, fmt.Errorf("payload key id %q: want 1-%d characters, no spaces or '='", k.ID, maxKeyIDLen)
		}
		if len(k.Raw) != 32 {
			return nil, fmt.Errorf("payload key %s: want 32 bytes (AES-256), got %d", k.ID, len(k.Raw))
		}
		if _, dup := c.keys[k.ID]; dup {
			return nil, fmt.Errorf("payload key %s is named twice", k.ID)
		}
		block, err := aes.NewCipher(k.Raw)
		if err != nil {
			return nil, err
		}
		if c.keys[k.ID], err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Load reads a keys file: one key a line, ID=BASE64 (32 bytes once
// decoded), # comments; the first line's key encrypts.
func Load(path string) (*Codec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read payload keys: %w", err)
	}
	var keys []Key
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, enc, ok := strings.Cut(line, "=")
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if !ok || err != nil {
			return nil, fmt.Errorf("%s line %d: want ID=BASE64", path, n) // never the key itself
		}
		keys = append(keys, Key{ID: strings.TrimSpace(id), Raw: raw})
	}
	c, err := New(keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Encode encrypts each payload whole (its metadata too) with the current
// key; the key id is authenticated with it.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	aead := c.keys[c.current]
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding),
				metaKeyID: []byte(c.current), metaCipher: []byte(cipherName)},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.current)),
		}
	}
	return out, nil
}

// Decode decrypts the payloads that are encrypted and passes the others.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[metaKeyID])
		aead, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("payload encrypted with key %q, which is not among the keys", id)
		}
		if len(p.GetData()) < aead.NonceSize() {
			return nil, errors.New("encrypted payload too short")
		}
		nonce, sealed := p.GetData()[:aead.NonceSize()], p.GetData()[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, []byte(id))
		if err != nil {
			return nil, fmt.Errorf("decrypt payload with key %q: %w", id, err)
		}
		var decoded commonpb.Payload
		if err := proto.Unmarshal(plain, &decoded); err != nil {
			return nil, fmt.Errorf("decode decrypted payload: %w", err)
		}
		out[i] = &decoded
	}
	return out, nil
}

// DataConverter is the default converter with c's encryption; Failures
// encrypts failure messages and stack traces too.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// Failures is the failure converter that encrypts a failure's message and
// stack trace with the data converter.
func (c *Codec) Failures() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: c.DataConverter(), EncodeCommonAttributes: true})
}
