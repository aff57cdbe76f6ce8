// Package envflag lets every command-line flag also be set from an
// environment variable: flag "temporal-address" of prefix "GARO" reads
// GARO_TEMPORAL_ADDRESS. A flag given on the command line wins over the
// environment, which wins over the default.
package envflag

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// Name is the environment variable that sets the flag called flagName.
func Name(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs and then sets every flag that args did not set
// from its environment variable, as looked up by getenv. It adds the
// variable's name to each flag's usage text.
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) error {
	Describe(fs, prefix)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return FromEnv(fs, prefix, getenv)
}

// Describe adds the environment variable's name to the usage text of the
// flags named, or of every flag when none is named.
func Describe(fs *flag.FlagSet, prefix string, names ...string) {
	fs.VisitAll(func(f *flag.Flag) {
		if len(names) == 0 || slices.Contains(names, f.Name) {
			f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, Name(prefix, f.Name))
		}
	})
}

// FromEnv sets the flags named (every flag when none is named) that the
// command line did not set from their environment variables.
func FromEnv(fs *flag.FlagSet, prefix string, getenv func(string) string, names ...string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || (len(names) > 0 && !slices.Contains(names, f.Name)) {
			return
		}
		env := Name(prefix, f.Name)
		if v := getenv(env); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("environment variable %s: %w", env, e)
			}
		}
	})
	return err
}

// StringList is a flag.Value that collects a comma-separated list; the flag
// may also be repeated.
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set adds the comma-separated entries of v.
func (l *StringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
