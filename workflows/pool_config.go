package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults and limits of a pool's configuration.
const (
	DefaultAgent            = "local"
	DefaultMaxRunners       = 3
	DefaultIdleGracePeriod  = 2 * time.Minute
	DefaultBootstrapTimeout = 10 * time.Minute
	DefaultRunnerGroup      = "default"
	DefaultProviderKind     = "process"
	DefaultQueuePoll        = 2 * time.Minute
	MaxRunnersLimit         = 1000
	MaxPoolLabels           = 64
)

// DefaultPoolLabels are the labels of a pool that names none.
func DefaultPoolLabels() []string { return []string{"self-hosted", "linux"} }

// ProviderConfig selects the provider of a pool's runners: "kind" and the
// provider's own options, all strings.
type ProviderConfig map[string]string

// Kind is the provider kind.
func (p ProviderConfig) Kind() string { return p["kind"] }

// PoolConfig is the configuration of one runner pool: which agent starts
// its runners with which provider, with what labels and limits.
type PoolConfig struct {
	Agent            string   `json:"agent"`
	Labels           []string `json:"labels"`
	MinIdle          int      `json:"minIdle"`
	MaxRunners       int      `json:"maxRunners"`
	IdleGracePeriod  Duration `json:"idleGracePeriod"`
	BootstrapTimeout Duration `json:"bootstrapTimeout"`
	// QueuePollInterval is how often the pool asks GitHub for its queued
	// jobs, to find those whose webhook never arrived (conditional
	// requests: an unchanged queue costs no rate limit).
	QueuePollInterval Duration       `json:"queuePollInterval,omitempty"`
	Ephemeral         bool           `json:"ephemeral"`
	RunnerGroup       string         `json:"runnerGroup"`
	Provider          ProviderConfig `json:"provider"`
}

// PoolConfigRequest is the body of PUT
// /api/v1/repositories/{owner}/{repo}/pools/{pool}: omitted fields take
// their defaults.
type PoolConfigRequest struct {
	Agent             *string        `json:"agent,omitempty"`
	Labels            []string       `json:"labels,omitempty"`
	MinIdle           *int           `json:"minIdle,omitempty"`
	MaxRunners        *int           `json:"maxRunners,omitempty"`
	IdleGracePeriod   *Duration      `json:"idleGracePeriod,omitempty"`
	BootstrapTimeout  *Duration      `json:"bootstrapTimeout,omitempty"`
	QueuePollInterval *Duration      `json:"queuePollInterval,omitempty"`
	Ephemeral         *bool          `json:"ephemeral,omitempty"`
	RunnerGroup       *string        `json:"runnerGroup,omitempty"`
	Provider          ProviderConfig `json:"provider,omitempty"`
}

// Config applies the defaults to r.
func (r PoolConfigRequest) Config() PoolConfig {
	c := PoolConfig{Agent: DefaultAgent, Labels: DefaultPoolLabels(), MaxRunners: DefaultMaxRunners,
		IdleGracePeriod: Duration(DefaultIdleGracePeriod), BootstrapTimeout: Duration(DefaultBootstrapTimeout),
		QueuePollInterval: Duration(DefaultQueuePoll),
		Ephemeral:         true, RunnerGroup: DefaultRunnerGroup, Provider: ProviderConfig{"kind": DefaultProviderKind}}
	if r.Agent != nil {
		c.Agent = *r.Agent
	}
	if r.Labels != nil {
		c.Labels = r.Labels
	}
	if r.MinIdle != nil {
		c.MinIdle = *r.MinIdle
	}
	if r.MaxRunners != nil {
		c.MaxRunners = *r.MaxRunners
	}
	if r.IdleGracePeriod != nil {
		c.IdleGracePeriod = *r.IdleGracePeriod
	}
	if r.BootstrapTimeout != nil {
		c.BootstrapTimeout = *r.BootstrapTimeout
	}
	if r.QueuePollInterval != nil {
		c.QueuePollInterval = *r.QueuePollInterval
	}
	if r.Ephemeral != nil {
		c.Ephemeral = *r.Ephemeral
	}
	if r.RunnerGroup != nil {
		c.RunnerGroup = *r.RunnerGroup
	}
	if r.Provider != nil {
		c.Provider = r.Provider
	}
	return c
}

// Validate checks a pool's configuration, except what needs I/O (that the
// agent exists and offers the provider), which the API checks.
func (c PoolConfig) Validate() error {
	var errs []error
	if err := ValidateAgentName(c.Agent); err != nil {
		errs = append(errs, err)
	}
	if c.MinIdle < 0 || c.MinIdle > c.MaxRunners || c.MaxRunners > MaxRunnersLimit {
		errs = append(errs, fmt.Errorf("want 0 <= minIdle (%d) <= maxRunners (%d) <= %d", c.MinIdle, c.MaxRunners, MaxRunnersLimit))
	}
	if c.MaxRunners < 1 {
		errs = append(errs, errors.New("maxRunners must be at least 1"))
	}
	if d := c.IdleGracePeriod.D(); d < time.Second || d > 24*time.Hour {
		errs = append(errs, fmt.Errorf("idleGracePeriod %s out of range [1s, 24h]", c.IdleGracePeriod))
	}
	if d := c.BootstrapTimeout.D(); d < 10*time.Second || d > 6*time.Hour {
		errs = append(errs, fmt.Errorf("bootstrapTimeout %s out of range [10s, 6h]", c.BootstrapTimeout))
	}
	if d := c.QueuePollInterval.D(); d != 0 && (d < 10*time.Second || d > time.Hour) {
		errs = append(errs, fmt.Errorf("queuePollInterval %s out of range [10s, 1h]", c.QueuePollInterval))
	}
	if len(c.Labels) == 0 || len(c.Labels) > MaxPoolLabels {
		errs = append(errs, fmt.Errorf("labels: want 1 to %d", MaxPoolLabels))
	}
	for _, l := range c.Labels {
		if strings.TrimSpace(l) == "" || len(l) > MaxAgentLabelLen || strings.Contains(l, ",") {
			errs = append(errs, fmt.Errorf("label %q must be 1-%d characters without commas", l, MaxAgentLabelLen))
		}
	}
	if _, err := RunnerGroupID(c.RunnerGroup); err != nil {
		errs = append(errs, err)
	}
	if c.Provider.Kind() == "" {
		errs = append(errs, errors.New("provider.kind is required"))
	}
	if len(c.Provider) > 32 {
		errs = append(errs, errors.New("provider: at most 32 options"))
	}
	for k, v := range c.Provider {
		if len(k) > 64 || len(v) > 1024 {
			errs = append(errs, fmt.Errorf("provider option %q too long", k))
		}
	}
	return errors.Join(errs...)
}

// RunnerGroupID maps a runner group to GitHub's id: "default" is 1; other
// groups are given by id.
func RunnerGroupID(group string) (int64, error) {
	if group == "" || group == DefaultRunnerGroup {
		return 1, nil
	}
	id, err := strconv.ParseInt(group, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("runnerGroup %q: want \"default\" or a group id", group)
	}
	return id, nil
}
