// Package poolconfigtest gives every field of a pool's configuration a
// valid value other than its default, so that a round-trip test covers
// fields added later without being changed.
package poolconfigtest

import (
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/garo-run/garo/workflows"
)

// Texts gives every field of workflows.PoolConfig, by JSON name, a valid
// value other than its default, in the field's text form (what a flag of
// garo pool set takes). Fields whose values must name something that
// exists, such as the agent, take theirs from given.
func Texts(given map[string]string) (map[string]string, error) {
	texts := map[string]string{}
	for _, f := range workflows.PoolFields() {
		if text, ok := given[f.Name]; ok {
			texts[f.Name] = text
			continue
		}
		text, err := other(f)
		if err != nil {
			return nil, err
		}
		texts[f.Name] = text
	}
	return texts, nil
}

// other is a text of the field's kind other than its default.
func other(f workflows.PoolField) (string, error) {
	switch {
	case f.Type == reflect.TypeFor[workflows.Duration]():
		d, err := time.ParseDuration(f.Default)
		if err != nil {
			return "", fmt.Errorf("default of %s: %w", f.Name, err)
		}
		return (2*d + time.Second).String(), nil
	case f.Type == reflect.TypeFor[workflows.ProviderConfig]():
		return f.Default + ",env.POOL_TEST=runner-" + f.Name, nil
	case f.Type.Kind() == reflect.Slice:
		return f.Default + ",extra-" + f.Name, nil
	case f.Type.Kind() == reflect.Int:
		n, err := strconv.Atoi(f.Default)
		return strconv.Itoa(n + 1), err
	case f.Type.Kind() == reflect.Float64:
		n, err := strconv.ParseFloat(f.Default, 64)
		return strconv.FormatFloat(n+0.25, 'f', -1, 64), err
	case f.Type.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(f.Default)
		return strconv.FormatBool(!b), err
	case f.Name == "runnerGroup":
		return "42", nil // a group id
	case f.Type.Kind() == reflect.String:
		return f.Default + "2", nil
	}
	return "", fmt.Errorf("pool field %s: no value of its kind %s; teach poolconfigtest one", f.Name, f.Type)
}

// Config is the configuration the texts describe: the defaults patched
// with them, as garo pool set would send them. It fails unless every field
// differs from its default and the whole is valid.
func Config(texts map[string]string) (workflows.PoolConfig, error) {
	patch, err := workflows.PoolPatch(texts)
	if err != nil {
		return workflows.PoolConfig{}, err
	}
	cfg, err := workflows.PatchPoolConfig(workflows.DefaultPoolConfig(), patch)
	if err != nil {
		return workflows.PoolConfig{}, err
	}
	if err := cfg.Validate(); err != nil {
		return workflows.PoolConfig{}, fmt.Errorf("filled pool config is invalid: %w", err)
	}
	got, def := reflect.ValueOf(cfg), reflect.ValueOf(workflows.DefaultPoolConfig())
	for i, f := range workflows.PoolFields() {
		if reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
			return workflows.PoolConfig{}, fmt.Errorf("pool field %s kept its default %q", f.Name, f.Default)
		}
	}
	return cfg, nil
}

// Flags are the arguments of garo pool set that set the texts.
func Flags(texts map[string]string) []string {
	var args []string
	for _, f := range workflows.PoolFields() {
		if text, ok := texts[f.Name]; ok {
			args = append(args, "--"+f.Flag+"="+text)
		}
	}
	return args
}
