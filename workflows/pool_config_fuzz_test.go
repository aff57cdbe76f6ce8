package workflows

import (
	"encoding/json"
	"testing"
)

// FuzzPoolConfig: decoding, patching and validating a pool's
// configuration never panics, and a configuration that validates comes
// back whole and still valid through JSON, and through a patch of
// nothing.
func FuzzPoolConfig(f *testing.F) {
	full, _ := json.Marshal(DefaultPoolConfig())
	for _, seed := range [][2]string{
		{string(full), `{"minIdle":1}`},
		{`{}`, `{"provider":null}`},
		{`{"labels":["self-hosted","gpu"],"maxRunners":10,"provider":{"kind":"process","env.A":"b"}}`, `{"labels":null}`},
		{`{"minIdle":4,"maxRunners":3}`, `[]`},
		{`{"idleGracePeriod":"1h30m","queuePollInterval":"0s"}`, `{"idleGracePeriod":"soon"}`},
		{`{"labels":["a\u0000b"]}`, `null`},
		{`{"provider":{"kind":"process","../x":"y"}}`, `{"provider":{"kind":null}}`},
		{`{"runnerGroup":"42"}{}`, `{"runnerGroup":"-1"}`},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]))
	}
	f.Fuzz(func(t *testing.T, body, patch []byte) {
		c, err := DecodePoolConfig(body)
		if err != nil {
			return
		}
		roundTrip(t, c)
		if p, err := PatchPoolConfig(c, patch); err == nil {
			roundTrip(t, p)
		}
	})
}

// roundTrip checks that a valid c comes back equal, and valid, from its
// JSON and from an empty patch.
func roundTrip(t *testing.T, c PoolConfig) {
	if c.Validate() != nil {
		return
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("marshal a valid config: %v", err)
	}
	back, err := DecodePoolConfig(b)
	if err != nil || !back.Equal(c) {
		t.Fatalf("a valid config does not come back from its JSON %s: %+v, %v", b, back, err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("a valid config is invalid after a round trip: %v", err)
	}
	same, err := PatchPoolConfig(c, []byte(`{}`))
	if err != nil || !same.Equal(c) {
		t.Fatalf("an empty patch changed %s: %+v, %v", b, same, err)
	}
}
