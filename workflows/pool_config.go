package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// PoolConfig is the configuration of one runner pool: which agent starts
// its runners with which provider, with what labels and limits.
//
// It is defined here once. Each field's tags say how the API, the CLI and
// the defaults see it: json its name, default its default and flag its
// flag of garo pool set, both in the text form of its kind (a string, an
// integer, true or false, a Go duration, a comma-separated list, or
// comma-separated key=value options), and usage what it means. Decoding,
// merge patches, equality and the CLI's flags all follow from the tags;
// Validate, below, checks the ranges.
type PoolConfig struct {
	Agent      string   `json:"agent" default:"local" flag:"agent" usage:"agent that serves the pool"`
	Labels     []string `json:"labels" default:"self-hosted,linux" flag:"labels" usage:"runner labels, comma-separated; a job goes to the pool whose labels fit it most closely"`
	MinIdle    int      `json:"minIdle" default:"0" flag:"min-idle" usage:"idle runners to keep"`
	MaxRunners int      `json:"maxRunners" default:"3" flag:"max-runners" usage:"most runners at once"`
	// IdleGracePeriod is how long a runner beyond minIdle may idle.
	IdleGracePeriod Duration `json:"idleGracePeriod" default:"2m" flag:"idle-grace" usage:"idle time before a runner beyond min-idle is deleted"`
	// BootstrapTimeout is how long a new runner has to come online.
	BootstrapTimeout Duration `json:"bootstrapTimeout" default:"10m" flag:"bootstrap-timeout" usage:"time for a new runner to come online"`
	// QueuePollInterval is how often the pool asks GitHub for its queued
	// jobs, to find those whose webhook never arrived (conditional
	// requests: an unchanged queue costs no rate limit); 0 never.
	QueuePollInterval Duration       `json:"queuePollInterval" default:"2m" flag:"queue-poll-interval" usage:"how often a quiet repository reconciles with GitHub, for queued jobs whose webhook was missed (0s: never; while jobs are in flight, every minute at least)"`
	Ephemeral         bool           `json:"ephemeral" default:"true" flag:"ephemeral" usage:"one job per runner (JIT)"`
	RunnerGroup       string         `json:"runnerGroup" default:"default" flag:"runner-group" usage:"runner group: \"default\" or a group id"`
	Provider          ProviderConfig `json:"provider" default:"kind=process" flag:"provider" usage:"provider: its kind, or kind=KIND,OPTION=VALUE,..."`
	// RetryLostJobs runs a job again, once, through GitHub's re-run API
	// when it failed because its runner was lost.
	RetryLostJobs bool `json:"retryLostJobs,omitempty" default:"false" flag:"retry-lost-jobs" usage:"run a job whose runner was lost mid-job again, once (GitHub's re-run)"`
	// HourlyPrice is what one runner of the pool costs an hour (say, its
	// instance type's price): the usage figures' estimated cost.
	HourlyPrice float64 `json:"hourlyPrice,omitempty" default:"0" flag:"hourly-price" usage:"price of one runner-hour, for the estimated cost in the usage figures (0: none)"`
}

// Limits of a pool's configuration.
const (
	MaxRunnersLimit = 5000
	MaxPoolLabels   = 64
	// MaxHourlyPrice bounds a runner-hour's price.
	MaxHourlyPrice = 10000
)

// ProviderConfig selects the provider of a pool's runners: "kind" and the
// provider's own options, all strings.
type ProviderConfig map[string]string

// Kind is the provider kind.
func (p ProviderConfig) Kind() string { return p["kind"] }

// PoolField is one field of PoolConfig, as its tags describe it.
type PoolField struct {
	// Name is its JSON name, Flag its flag of garo pool set.
	Name, Flag, Usage string
	// Default is its default, in the text form of its kind.
	Default string
	// Bool: a flag of it may go without a value.
	Bool bool
	// Type is its Go type.
	Type reflect.Type
}

// PoolFields lists the fields of PoolConfig in order.
func PoolFields() []PoolField {
	t := reflect.TypeFor[PoolConfig]()
	out := make([]PoolField, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, PoolField{Name: name, Flag: f.Tag.Get("flag"), Usage: f.Tag.Get("usage"),
			Default: f.Tag.Get("default"), Bool: f.Type.Kind() == reflect.Bool, Type: f.Type})
	}
	return out
}

// JSON turns text in the field's text form into its JSON value.
func (f PoolField) JSON(text string) (json.RawMessage, error) {
	var v any
	var err error
	switch {
	case f.Type == reflect.TypeFor[Duration]():
		var d time.Duration
		d, err = time.ParseDuration(text)
		v = Duration(d)
	case f.Type == reflect.TypeFor[ProviderConfig]():
		v, err = parseOptions(text)
	case f.Type.Kind() == reflect.Slice:
		list := []string{}
		for _, s := range strings.Split(text, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		v = list
	case f.Type.Kind() == reflect.Int:
		v, err = strconv.Atoi(text)
	case f.Type.Kind() == reflect.Float64:
		v, err = strconv.ParseFloat(text, 64)
	case f.Type.Kind() == reflect.Bool:
		v, err = strconv.ParseBool(text)
	default:
		v = text
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %q: %w", f.Name, text, err)
	}
	return json.Marshal(v)
}

// parseOptions reads "kind=ec2,region=eu-west-1" (or just "ec2", the kind).
func parseOptions(text string) (ProviderConfig, error) {
	out := ProviderConfig{}
	for _, kv := range strings.Split(text, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			k, v = "kind", kv
		}
		if k = strings.TrimSpace(k); k == "" {
			return nil, fmt.Errorf("option %q has no name", kv)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// PoolPatch is a JSON merge patch (RFC 7386) of the fields given in their
// text form, by JSON name: what garo pool set sends for the flags given.
func PoolPatch(texts map[string]string) ([]byte, error) {
	patch := map[string]json.RawMessage{}
	for _, f := range PoolFields() {
		if text, ok := texts[f.Name]; ok {
			v, err := f.JSON(text)
			if err != nil {
				return nil, err
			}
			patch[f.Name] = v
		}
	}
	return json.Marshal(patch)
}

// DefaultPoolConfig is the configuration of a pool that sets nothing.
func DefaultPoolConfig() PoolConfig {
	doc := map[string]json.RawMessage{}
	for _, f := range PoolFields() {
		v, err := f.JSON(f.Default)
		if err != nil {
			panic("default of pool field " + err.Error())
		}
		doc[f.Name] = v
	}
	b, _ := json.Marshal(doc)
	var c PoolConfig
	if err := json.Unmarshal(b, &c); err != nil {
		panic("defaults of PoolConfig: " + err.Error())
	}
	return c
}

// DecodePoolConfig reads a pool's configuration from JSON, as PUT takes
// it: fields left out take their defaults, an unknown field is an error.
// An empty body is every default.
func DecodePoolConfig(body []byte) (PoolConfig, error) {
	c := DefaultPoolConfig()
	if len(bytes.TrimSpace(body)) == 0 {
		return c, nil
	}
	provider := c.Provider
	c.Provider = nil // a provider given replaces the default one whole
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return PoolConfig{}, fmt.Errorf("invalid pool configuration: %w", err)
	}
	if dec.More() {
		return PoolConfig{}, errors.New("invalid pool configuration: trailing data")
	}
	if c.Provider == nil {
		c.Provider = provider
	}
	return c, nil
}

// PatchPoolConfig applies a JSON merge patch (RFC 7386) to c: fields the
// patch names change (null resets one to its default), the rest stay.
// A patch that is not an object (which RFC 7386 takes for a whole new
// document) is an error: a pool's config is changed field by field.
func PatchPoolConfig(c PoolConfig, patch []byte) (PoolConfig, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(patch, &fields); err != nil || fields == nil {
		return PoolConfig{}, errors.New("invalid merge patch: want a JSON object of the fields to change")
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return PoolConfig{}, err
	}
	merged, err := jsonpatch.MergePatch(doc, patch)
	if err != nil {
		return PoolConfig{}, fmt.Errorf("invalid merge patch: %w", err)
	}
	return DecodePoolConfig(merged)
}

// Equal reports whether c and o configure a pool alike. It is called on
// every turn of a repository's loop (is the memo up to date?), so it
// compares the values rather than their JSON.
func (c PoolConfig) Equal(o PoolConfig) bool { return reflect.DeepEqual(c, o) }

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
	if !(c.HourlyPrice >= 0 && c.HourlyPrice <= MaxHourlyPrice) {
		errs = append(errs, fmt.Errorf("hourlyPrice %g out of range [0, %d]", c.HourlyPrice, MaxHourlyPrice))
	}
	if len(c.Labels) == 0 || len(c.Labels) > MaxPoolLabels {
		errs = append(errs, fmt.Errorf("labels: want 1 to %d", MaxPoolLabels))
	}
	for _, l := range c.Labels {
		if strings.TrimSpace(l) == "" || len(l) > MaxAgentLabelLen || strings.Contains(l, ",") || !printable(l) {
			errs = append(errs, fmt.Errorf("label %q must be 1-%d printable characters without commas", l, MaxAgentLabelLen))
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
	for _, k := range slices.Sorted(maps.Keys(c.Provider)) {
		v := c.Provider[k]
		switch {
		case len(k) > 64 || len(v) > 1024:
			errs = append(errs, fmt.Errorf("provider option %q too long", k))
		case !optionNamePattern.MatchString(k):
			errs = append(errs, fmt.Errorf("provider option %q: want a letter, then letters, digits, '.', '_' or '-'", k))
		case !printable(v):
			errs = append(errs, fmt.Errorf("provider option %q: want printable characters", k))
		}
	}
	return errors.Join(errs...)
}

// DefaultRunnerGroup is the runner group every repository has.
const DefaultRunnerGroup = "default"

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

// optionNamePattern is the form of a provider option's name.
var optionNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*$`)

// Printable reports whether s is valid UTF-8 without control characters
// (a newline in a label would forge lines in logs and in the runner's
// configuration).
func Printable(s string) bool { return printable(s) }

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
