package githubsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Environment variables a simulated runner reads: the same names GitHub's
// actions runner reads its inputs from, so that a provider can start either
// the same way. Secrets travel in the environment or on stdin, never argv.
const (
	EnvJITConfig = "ACTIONS_RUNNER_INPUT_JITCONFIG"
	EnvURL       = "ACTIONS_RUNNER_INPUT_URL"
	EnvToken     = "ACTIONS_RUNNER_INPUT_TOKEN"
	EnvName      = "ACTIONS_RUNNER_INPUT_NAME"
	EnvLabels    = "ACTIONS_RUNNER_INPUT_LABELS"
	EnvEphemeral = "ACTIONS_RUNNER_INPUT_EPHEMERAL"
)

// RunnerConfig configures a simulated runner process.
type RunnerConfig struct {
	// URL of the simulator; taken from the JIT config when empty.
	URL string
	// JITConfig is an encoded_jit_config; or else Token, Name and Labels
	// register a runner with a registration token.
	JITConfig string
	Token     string
	Name      string
	Labels    []string
	Ephemeral bool
	// HeartbeatEvery defaults to 1s.
	HeartbeatEvery time.Duration
	// GiveUpAfter ends the runner with ErrUnreachable when the simulator
	// has not answered for this long (default 15s), as a real runner
	// stops when GitHub is gone for good.
	GiveUpAfter time.Duration
	Logger      *slog.Logger
}

// ErrRemoved ends a runner that GitHub no longer knows (it was deleted).
var ErrRemoved = errors.New("runner was removed")

// ErrUnreachable ends a runner whose simulator stopped answering.
var ErrUnreachable = errors.New("simulator unreachable")

type runnerClient struct {
	url, cred string
	http      *http.Client
}

func (c *runnerClient) post(ctx context.Context, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/_sim/runner"+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cred != "" {
		req.Header.Set("Authorization", "Bearer "+c.cred)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: decode: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

// baseURL keeps the scheme and host of u: a runner is given its
// repository's URL (http://sim/owner/repo), as GitHub's runner is.
func baseURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return strings.TrimSuffix(u, "/")
	}
	return p.Scheme + "://" + p.Host
}

// DecodeJITConfig reads the simulator URL and the runner credential out of
// an encoded_jit_config.
func DecodeJITConfig(encoded string) (url, credential string, rf RunnerFile, err error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", rf, fmt.Errorf("JIT config is not base64: %w", err)
	}
	var files JITConfig
	if err := json.Unmarshal(raw, &files); err != nil {
		return "", "", rf, fmt.Errorf("JIT config is not a map of files: %w", err)
	}
	file := func(name string, v any) error {
		b, err := base64.StdEncoding.DecodeString(files[name])
		if err != nil || len(b) == 0 {
			return fmt.Errorf("JIT config lacks %s", name)
		}
		return json.Unmarshal(b, v)
	}
	var cred CredentialsFile
	if err := file(".runner", &rf); err != nil {
		return "", "", rf, err
	}
	if err := file(".credentials", &cred); err != nil {
		return "", "", rf, err
	}
	return strings.TrimSuffix(rf.ServerURL, "/_sim/runner"), cred.Data["clientId"], rf, nil
}

// RunRunner runs a simulated runner until it has done its one job
// (ephemeral), is removed, or ctx ends. A job in progress when ctx ends
// fails, as on GitHub.
func RunRunner(ctx context.Context, cfg RunnerConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = time.Second
	}
	if cfg.GiveUpAfter == 0 {
		cfg.GiveUpAfter = 15 * time.Second
	}
	c := &runnerClient{url: baseURL(cfg.URL), http: &http.Client{Timeout: 30 * time.Second}}
	if err := c.credentials(ctx, cfg); err != nil {
		return err
	}
	var sess Session
	if code, err := c.post(ctx, "/connect", nil, &sess); err != nil {
		if code == http.StatusNotFound || code == http.StatusGone {
			return fmt.Errorf("%w: %v", ErrRemoved, err)
		}
		return fmt.Errorf("connect: %w", err)
	}
	cfg.Logger.Info("Runner online", "name", sess.Name, "id", sess.RunnerID, "ephemeral", sess.Ephemeral)

	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	removed := make(chan error, 1)
	go c.heartbeats(hbCtx, cfg, removed)
	defer func() {
		exitCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.post(exitCtx, "/exit", nil, nil)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-removed:
			return err
		default:
		}
		exit, err := c.serveOne(ctx, cfg.Logger)
		if err != nil || exit || ctx.Err() != nil {
			return err
		}
	}
}

// credentials gets the runner's credential: from its JIT config, or by
// registering with a registration token.
func (c *runnerClient) credentials(ctx context.Context, cfg RunnerConfig) error {
	switch {
	case cfg.JITConfig != "":
		simURL, cred, _, err := DecodeJITConfig(cfg.JITConfig)
		if err != nil {
			return err
		}
		if c.url == "" {
			c.url = simURL
		}
		c.cred = cred
	case cfg.Token != "":
		var sess Session
		if _, err := c.post(ctx, "/register", RegisterRequest{Token: cfg.Token, Name: cfg.Name, Labels: cfg.Labels,
			Ephemeral: cfg.Ephemeral, Replace: true}, &sess); err != nil {
			return fmt.Errorf("register runner %s: %w", cfg.Name, err)
		}
		c.cred = sess.Credential
	default:
		return errors.New("no JIT config and no registration token")
	}
	if c.url == "" {
		return errors.New("no simulator URL")
	}
	return nil
}

// heartbeats keeps the runner online until ctx ends; it reports on
// removed when the simulator removed the runner or has not answered for
// cfg.GiveUpAfter.
func (c *runnerClient) heartbeats(ctx context.Context, cfg RunnerConfig, removed chan<- error) {
	t := time.NewTicker(cfg.HeartbeatEvery)
	defer t.Stop()
	lastHeard := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		code, _ := c.post(ctx, "/heartbeat", nil, nil)
		switch {
		case code == http.StatusNotFound:
			removed <- ErrRemoved
			return
		case code != 0:
			lastHeard = time.Now()
		case time.Since(lastHeard) > cfg.GiveUpAfter:
			removed <- ErrUnreachable
			return
		}
	}
}

// serveOne waits for a job and runs it; exit tells that the runner is
// done (an ephemeral runner after its job).
func (c *runnerClient) serveOne(ctx context.Context, log *slog.Logger) (exit bool, err error) {
	var a Assignment
	code, err := c.post(ctx, "/acquire", nil, &a)
	switch {
	case ctx.Err() != nil:
		return true, nil
	case code == http.StatusNotFound || code == http.StatusGone:
		return true, fmt.Errorf("%w: %v", ErrRemoved, err)
	case err != nil:
		log.Warn("Acquire failed", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return false, nil
	case code == http.StatusNoContent:
		return false, nil
	}
	log.Info("Job started", "job", a.JobID, "repo", a.Repo)
	select {
	case <-time.After(time.Duration(a.DurationMs) * time.Millisecond):
	case <-ctx.Done():
		// Stopped mid-job: the job fails (the deferred exit reports it).
		log.Warn("Runner stopped mid-job", "job", a.JobID)
		return true, nil
	}
	var done struct {
		Exit bool `json:"exit"`
	}
	if _, err := c.post(ctx, "/complete", CompleteRequest{JobID: a.JobID, Conclusion: a.Conclusion}, &done); err != nil {
		if ctx.Err() != nil {
			return true, nil // stopped as it reported: the job fails, as on GitHub
		}
		return true, fmt.Errorf("complete job %d: %w", a.JobID, err)
	}
	log.Info("Job completed", "job", a.JobID)
	return done.Exit, nil
}
