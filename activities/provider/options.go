package provider

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Option describes one option a pool may give its provider, beside
// "kind". A provider lists its options (Provider.Options); the agent
// reports them when it registers, so that the server refuses a pool whose
// options its provider would not take before anything starts.
type Option struct {
	// Name is the option's name. A name ending in "." names a family: any
	// option that starts with it and goes on, such as "env.LANG".
	Name  string `json:"name"`
	Usage string `json:"usage,omitempty"`
	// Required: a pool of this provider must give it.
	Required bool `json:"required,omitempty"`
	// Pattern is a regular expression (RE2) the whole value must match;
	// empty: any value.
	Pattern string `json:"pattern,omitempty"`
	// KeyPattern, for a family, is what the rest of the name must match
	// whole.
	KeyPattern string `json:"keyPattern,omitempty"`
}

// Limits on a provider's description of its options.
const (
	MaxOptions       = 64
	MaxOptionPattern = 256
	MaxOptionUsage   = 512
)

var schemaNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`)

// CheckSchema checks a list of options as an agent reports it: within
// the limits, with names of the form pool options take and patterns that
// compile.
func CheckSchema(opts []Option) error {
	if len(opts) > MaxOptions {
		return fmt.Errorf("more than %d options", MaxOptions)
	}
	seen := map[string]bool{}
	for _, o := range opts {
		switch {
		case !schemaNamePattern.MatchString(o.Name) || o.Name == "kind":
			return fmt.Errorf("option name %q: want a letter, then letters, digits, '.', '_' or '-', at most 64", o.Name)
		case seen[o.Name]:
			return fmt.Errorf("option %q listed twice", o.Name)
		case len(o.Usage) > MaxOptionUsage || len(o.Pattern) > MaxOptionPattern || len(o.KeyPattern) > MaxOptionPattern:
			return fmt.Errorf("option %q: usage or pattern too long", o.Name)
		case o.KeyPattern != "" && !o.family():
			return fmt.Errorf("option %q: only a family (a name ending in '.') has a key pattern", o.Name)
		case o.Required && o.family():
			return fmt.Errorf("option family %q cannot be required", o.Name)
		}
		seen[o.Name] = true
		for _, p := range []string{o.Pattern, o.KeyPattern} {
			if _, err := compileWhole(p); err != nil {
				return fmt.Errorf("option %q: pattern %q: %w", o.Name, p, err)
			}
		}
	}
	return nil
}

// CheckOptions checks a pool's provider options (kind included, which it
// skips) against the options its provider takes: no unknown option, every
// required one given, every value (and family key) of its pattern. The
// error names every problem and, for an unknown option, what is taken.
func CheckOptions(schema []Option, given map[string]string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(given)) {
		if k == "kind" {
			continue
		}
		o, key, ok := lookup(schema, k)
		if !ok {
			errs = append(errs, fmt.Errorf("provider %s takes no option %q (it takes: %s)", given["kind"], k, names(schema)))
			continue
		}
		if key != "" && !matches(o.KeyPattern, key) {
			errs = append(errs, fmt.Errorf("provider option %q: %q after %q must match %s", k, key, o.Name, o.KeyPattern))
		}
		if !matches(o.Pattern, given[k]) {
			errs = append(errs, fmt.Errorf("provider option %q: %q must match %s%s", k, given[k], o.Pattern, usage(o)))
		}
	}
	for _, o := range schema {
		if _, ok := given[o.Name]; o.Required && !ok {
			errs = append(errs, fmt.Errorf("provider %s needs option %q%s", given["kind"], o.Name, usage(o)))
		}
	}
	return errors.Join(errs...)
}

func (o Option) family() bool { return strings.HasSuffix(o.Name, ".") }

// lookup finds the option named k: one of that name, or the family it
// belongs to, with the rest of its name.
func lookup(schema []Option, k string) (Option, string, bool) {
	for _, o := range schema {
		if o.Name == k && !o.family() {
			return o, "", true
		}
		if o.family() && strings.HasPrefix(k, o.Name) && len(k) > len(o.Name) {
			return o, k[len(o.Name):], true
		}
	}
	return Option{}, "", false
}

func names(schema []Option) string {
	if len(schema) == 0 {
		return "none"
	}
	var out []string
	for _, o := range schema {
		n := o.Name
		if o.family() {
			n += "NAME"
		}
		out = append(out, n)
	}
	return strings.Join(out, ", ")
}

func usage(o Option) string {
	if o.Usage == "" {
		return ""
	}
	return " (" + o.Usage + ")"
}

func compileWhole(p string) (*regexp.Regexp, error) { return regexp.Compile(`^(?:` + p + `)$`) }

func matches(pattern, v string) bool {
	if pattern == "" {
		return true
	}
	re, err := compileWhole(pattern)
	return err == nil && re.MatchString(v)
}
