// Package sim is the provider whose runners live inside the GitHub
// simulator: each instance is a simulated runner the simulator hosts,
// created through its control API (/_sim/instances), with no process per
// runner. Benchmarks use it to measure orchestration, not process
// start-up; the process provider stays for realistic end-to-end runs.
package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/garo-run/garo/activities/provider"
)

// Kind is this provider's name in pool configurations.
const Kind = "sim"

// Provider asks the simulator at URL for its instances.
type Provider struct {
	url  string
	http *http.Client
}

// New returns a provider of the simulator at url.
func New(url string) *Provider {
	return &Provider{url: strings.TrimSuffix(url, "/") + "/_sim/instances", http: &http.Client{Timeout: maxWait + 30*time.Second}}
}

// Kind returns "sim".
func (p *Provider) Kind() string { return Kind }

// Options: none.
func (p *Provider) Options() []provider.Option { return nil }

// instance is the simulator's answer.
type instance struct {
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	State     string            `json:"state"`
	ExitCode  int               `json:"exitCode"`
	Tags      map[string]string `json:"tags"`
	CreatedAt time.Time         `json:"createdAt"`
}

func (in instance) provider() provider.Instance {
	return provider.Instance{Name: in.Name, ID: in.ID, State: in.State, Tags: in.Tags, CreatedAt: in.CreatedAt, ExitCode: in.ExitCode}
}

func (p *Provider) do(ctx context.Context, method, u string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("simulator: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusConflict {
		if resp.StatusCode == http.StatusNotFound {
			return resp.StatusCode, provider.ErrNotFound
		}
		return resp.StatusCode, fmt.Errorf("simulator: %s %s: %s", method, u, resp.Status)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("simulator: %s %s: %w", method, u, err)
		}
	}
	return resp.StatusCode, nil
}

// Create asks the simulator to host the runner; one of that name already
// there is returned with ErrDuplicate.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Instance, error) {
	var in instance
	code, err := p.do(ctx, http.MethodPost, p.url, map[string]any{"name": req.Name, "tags": req.Tags, "env": req.Env}, &in)
	if err != nil {
		return provider.Instance{}, err
	}
	if code == http.StatusConflict {
		return in.provider(), fmt.Errorf("%w: %s", provider.ErrDuplicate, req.Name)
	}
	return in.provider(), nil
}

// Delete stops and forgets the runner.
func (p *Provider) Delete(ctx context.Context, name string) error {
	_, err := p.do(ctx, http.MethodDelete, p.url+"/"+url.PathEscape(name), nil, nil)
	if errors.Is(err, provider.ErrNotFound) {
		return fmt.Errorf("%w: %s", provider.ErrNotFound, name)
	}
	return err
}

// Get returns the runner called name.
func (p *Provider) Get(ctx context.Context, name string) (provider.Instance, error) {
	var in instance
	if _, err := p.do(ctx, http.MethodGet, p.url+"/"+url.PathEscape(name), nil, &in); err != nil {
		if errors.Is(err, provider.ErrNotFound) {
			return provider.Instance{}, fmt.Errorf("%w: %s", provider.ErrNotFound, name)
		}
		return provider.Instance{}, err
	}
	return in.provider(), nil
}

// Exited returns a channel closed when the runner called name has exited
// or is gone: a goroutine asks the simulator, a minute at a time.
func (p *Provider) Exited(name string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), maxWait+10*time.Second)
			var in instance
			_, err := p.do(ctx, http.MethodGet, p.url+"/"+url.PathEscape(name)+"?wait="+maxWait.String(), nil, &in)
			cancel()
			switch {
			case errors.Is(err, provider.ErrNotFound), err == nil && in.State == provider.StateExited:
				return
			case err != nil:
				time.Sleep(time.Second)
			}
		}
	}()
	return done
}

// maxWait is how long one request of Exited waits.
const maxWait = time.Minute

// List returns the runners whose tags include all of tags.
func (p *Provider) List(ctx context.Context, tags map[string]string) ([]provider.Instance, error) {
	q := url.Values{}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		q.Set("tag."+k, tags[k])
	}
	var list []instance
	if _, err := p.do(ctx, http.MethodGet, p.url+"?"+q.Encode(), nil, &list); err != nil {
		return nil, err
	}
	out := make([]provider.Instance, 0, len(list))
	for _, in := range list {
		out = append(out, in.provider())
	}
	return out, nil
}
