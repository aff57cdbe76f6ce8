// Package envflag lets every command-line flag also be set from an
// environment variable: flag "temporal-address" of prefix "GARO" reads
// GARO_TEMPORAL_ADDRESS. A flag given on the command line wins over the
// environment, which wins over the default.
package envflag

import (
	"flag"
	"fmt"
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
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, Name(prefix, f.Name))
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
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
