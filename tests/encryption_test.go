package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/garo-run/garo/workflows"
)

// TestPayloadsAreEncryptedAndTheCodecServerReadsThem: with a payload keys
// file, a pool serves its jobs and the API shows it (the server decrypts
// the memos), while every payload of its history but the search
// attributes (which Temporal indexes) is AES-GCM ciphertext in which the
// repository's name cannot be read; garo codec-server, with the
// same keys, gives the Web UI the payloads in clear, and answers its CORS
// preflight.
func TestPayloadsAreEncryptedAndTheCodecServerReadsThem(t *testing.T) {
	t.Parallel()
	const ns, agent, repo = "e2e-crypt", "crypt-1", "e2e/crypt-secret-repo"
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	keys := filepath.Join(t.TempDir(), "payload-keys")
	require.NoError(t, os.WriteFile(keys, []byte("k1="+base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600))
	crypt := []string{"--payload-keys-file", keys}
	e := newPoolEnvWith(t, &poolEnv{t: t, ns: ns, agent: agent, addr: temporalAddr, agentArgs: crypt, serverArgs: crypt})

	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"`+agent+`","maxRunners":2,"idleGracePeriod":"2s"}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	owner, name, _ := strings.Cut(repo, "/")
	e.sim.Enqueue(owner, name, []string{"self-hosted", "linux"}, 200*time.Millisecond, 3, "build")
	eventually(t, 2*time.Minute, "every job served", func() bool { return completed(e.sim, repo) == 3 })
	eventually(t, 30*time.Second, "the API reads the encrypted memo", func() bool {
		code, b := e.do("GET", "/api/v1/repositories?limit=10", "")
		return code == http.StatusOK && strings.Contains(string(b), `"jobsDone":3`)
	})

	hist := e.temporal.GetWorkflowHistory(context.Background(), workflows.PoolWorkflowID(owner, name, workflows.DefaultPool), "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var payloads []*commonpb.Payload
	for hist.HasNext() {
		ev, err := hist.Next()
		require.NoError(t, err)
		walkPayloads(ev.ProtoReflect(), false, func(p *commonpb.Payload, indexed bool) {
			if !indexed { // search attributes stay readable: Temporal indexes them
				payloads = append(payloads, p)
			}
		})
	}
	require.Greater(t, len(payloads), 20, "inputs, results, signals, memos, markers")
	for _, p := range payloads {
		assert.Equal(t, "binary/encrypted", string(p.GetMetadata()["encoding"]))
		assert.False(t, bytes.Contains(p.GetData(), []byte("crypt-secret-repo")), "the repository's name is not readable")
	}

	port := freePort(t)
	codec := "http://127.0.0.1:" + strconv.Itoa(port)
	p := start(t, "codec-server", nil, "codec-server", "--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--payload-keys-file", keys, "--cors-origin", "http://localhost:8233")
	var body bytes.Buffer
	body.WriteString(`{"payloads":[`)
	for i, pl := range payloads {
		if i > 0 {
			body.WriteString(",")
		}
		j, err := protojson.Marshal(pl)
		require.NoError(t, err)
		body.Write(j)
	}
	body.WriteString("]}")
	eventually(t, 10*time.Second, "the codec server", func() bool {
		select {
		case <-p.done:
			t.Fatalf("codec-server exited: %s", p.out.String())
		default:
		}
		resp, err := http.Post(codec+"/decode", "application/json", bytes.NewReader(body.Bytes()))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		decoded, _ := io.ReadAll(resp.Body)
		var out struct{ Payloads []json.RawMessage }
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", decoded)
		require.NoError(t, json.Unmarshal(decoded, &out))
		clear := ""
		for _, d := range out.Payloads {
			var pl commonpb.Payload
			require.NoError(t, protojson.Unmarshal(d, &pl))
			clear += string(pl.GetData())
		}
		assert.Contains(t, clear, "crypt-secret-repo", "the codec server decrypts")
		return true
	})
	req, _ := http.NewRequest(http.MethodOptions, codec+"/decode", nil)
	req.Header.Set("Origin", "http://localhost:8233") // the Web UI's preflight
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "Content-Type, X-Namespace")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "http://localhost:8233", resp.Header.Get("Access-Control-Allow-Origin"), "the Web UI may call it")
}

// walkPayloads calls f with every Payload message inside m, and whether
// it is a search attribute's (indexed).
func walkPayloads(m protoreflect.Message, indexed bool, f func(p *commonpb.Payload, indexed bool)) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		f(p, indexed)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		in := indexed || fd.Name() == "search_attributes"
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				walkPayloads(v.List().Get(i).Message(), in, f)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkPayloads(mv.Message(), in, f)
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			walkPayloads(v.Message(), in, f)
		}
		return true
	})
}
