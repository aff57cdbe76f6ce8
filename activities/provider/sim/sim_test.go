package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/providertest"
	"github.com/garo-run/garo/tests/githubsim"
)

func newSim(t *testing.T) (*githubsim.Sim, string) {
	t.Helper()
	s := githubsim.New(githubsim.Options{Seed: 1})
	srv := httptest.NewServer(s.Handler())
	s.SetBaseURL(srv.URL)
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	return s, srv.URL
}

// jit asks the simulator, as GitHub's API, for a JIT config of a runner.
func jit(url, name string) string {
	body, _ := json.Marshal(map[string]any{"name": name, "runner_group_id": 1, "labels": []string{"self-hosted"}})
	req, _ := http.NewRequest("POST", url+"/repos/octo/app/actions/runners/generate-jitconfig", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer sim-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var out struct {
		EncodedJITConfig string `json:"encoded_jit_config"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.EncodedJITConfig == "" {
		panic("no JIT config: " + resp.Status)
	}
	return out.EncodedJITConfig
}

func TestConformance(t *testing.T) {
	var url string
	var mu sync.Mutex
	var jits map[string]string // a name's JIT config, asked for once
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider {
			_, url = newSim(t)
			mu.Lock()
			jits = map[string]string{}
			mu.Unlock()
			return New(url)
		},
		Reopen: func(t *testing.T, _ provider.Provider) provider.Provider { return New(url) },
		Request: func(name string, tags map[string]string) provider.CreateRequest {
			mu.Lock()
			defer mu.Unlock()
			if _, ok := jits[name]; !ok {
				jits[name] = jit(url, name)
			}
			return provider.CreateRequest{Name: name, Tags: tags, Env: map[string]string{githubsim.EnvJITConfig: jits[name]}}
		},
	})
}

// TestAHostedRunnerRunsItsJobAndExits: an ephemeral runner the simulator
// hosts takes a job, runs it, and its instance exits cleanly.
func TestAHostedRunnerRunsItsJobAndExits(t *testing.T) {
	s, url := newSim(t)
	p := New(url)
	ids := s.Enqueue("octo", "app", []string{"self-hosted"}, 50*time.Millisecond, 1, "build")
	_, err := p.Create(t.Context(), provider.CreateRequest{Name: "r-job", Env: map[string]string{githubsim.EnvJITConfig: jit(url, "r-job")}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		in, err := p.Get(t.Context(), "r-job")
		return err == nil && in.State == provider.StateExited
	}, 10*time.Second, 20*time.Millisecond)
	in, err := p.Get(t.Context(), "r-job")
	require.NoError(t, err)
	assert.Equal(t, 0, in.ExitCode)
	j := s.Jobs("octo/app")
	require.Len(t, j, 1)
	assert.Equal(t, ids[0], j[0].ID)
	assert.Equal(t, "success", j[0].Conclusion)
	assert.Equal(t, "r-job", j[0].RunnerName)
}
