package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/internal/envflag"
	"github.com/garo-run/garo/workflows"
)

// command is one operator command on the REST API, such as "pool set" or
// "runners".
type command struct {
	name    string // noun, then subcommand if any: "pool set"
	args    string // its positional arguments, as usage shows them
	nargs   [2]int // how many positional arguments it takes: at least, at most
	summary string
	// long: it may take longer than a minute (it waits until Ctrl-C).
	long bool
	// flags adds the command's own flags, if any.
	flags func(fs *flag.FlagSet)
	run   func(ctx context.Context, c *cli, args []string) error
}

// commands are every operator command; each noun has a file of its own
// (repo.go, pool.go, agents.go, runners.go, usage.go).
func commands() []command {
	return slices.Concat(repoCommands(), poolCommands(), agentsCommands(), runnerCommands(), usageCommands())
}

func isOperatorCommand(noun string) bool {
	return slices.ContainsFunc(commands(), func(c command) bool { return nounOf(c.name) == noun })
}

func nounOf(name string) string { noun, _, _ := strings.Cut(name, " "); return noun }

// commandList lists the commands of noun (all when noun is ""), a line each.
func commandList(noun string) string {
	var b strings.Builder
	for _, c := range commands() {
		if noun == "" || nounOf(c.name) == noun {
			fmt.Fprintf(&b, "  %-44s %s\n", "garo "+c.name+" "+c.args, c.summary)
		}
	}
	return b.String()
}

// cli is what an operator command works with.
type cli struct {
	api    *apiclient.Client
	out    *printer
	stdout io.Writer
	// fs holds the command's parsed flags.
	fs *flag.FlagSet
}

// cliFlags are the flags every operator command takes.
type cliFlags struct {
	server string
	token  string
	output string
}

func (c *cliFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "http://localhost:8080", "URL of garo server")
	fs.StringVar(&c.token, "token", "", "bearer token (prefer the environment variable: flags show in process listings)")
	fs.StringVar(&c.output, "o", "table", "output: table or json")
}

// findCommand picks the command args name: a noun alone, or a noun and
// its subcommand. On "garo NOUN", "garo NOUN --help" or an unknown
// subcommand it prints the noun's commands.
func findCommand(args []string, stdout, stderr io.Writer) (command, []string, error) {
	noun := args[0]
	for _, c := range commands() {
		if c.name == noun {
			return c, args[1:], nil
		}
	}
	nounUsage := fmt.Sprintf("Usage:\n%sRun \"garo %s SUBCOMMAND --help\" for its flags.\n", commandList(noun), noun)
	if len(args) < 2 {
		fmt.Fprint(stderr, nounUsage)
		return command{}, nil, fmt.Errorf("%s: which subcommand?", noun)
	}
	switch args[1] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, nounUsage)
		return command{}, nil, flag.ErrHelp
	}
	for _, c := range commands() {
		if c.name == noun+" "+args[1] {
			return c, args[2:], nil
		}
	}
	fmt.Fprint(stderr, nounUsage)
	return command{}, nil, fmt.Errorf("unknown command %q", noun+" "+args[1])
}

// runOperator runs an operator command: flags may come before or after
// its positional arguments (garo pool get o/r -o json).
func runOperator(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd, rest, err := findCommand(args, stdout, stderr)
	if err != nil {
		return err
	}
	fs := newFlagSet(cmd.name, stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: garo %s %s [flags]\n%s.\n\nFlags:\n", cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	var cf cliFlags
	cf.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	// Only the connection and output flags come from the environment: a
	// pool's fields change only when a flag names them.
	common := []string{"server", "token", "o"}
	envflag.Describe(fs, "GARO", common...)
	var pos []string
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if err := envflag.FromEnv(fs, "GARO", getenv, common...); err != nil {
		return err
	}
	if len(pos) < cmd.nargs[0] || len(pos) > cmd.nargs[1] {
		fs.Usage()
		return fmt.Errorf("%s takes %s", cmd.name, strings.TrimSpace(cmd.args+" (no more)"))
	}
	if cf.token == "" {
		return errors.New("no token: set GARO_TOKEN (or --token)")
	}
	if cf.output != "table" && cf.output != "json" {
		return fmt.Errorf("-o %q: want table or json", cf.output)
	}
	if !cmd.long {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	c := &cli{api: apiclient.New(cf.server, cf.token), out: &printer{w: stdout, json: cf.output == "json"}, stdout: stdout, fs: fs}
	return cmd.run(ctx, c, pos)
}

// parsePoolArg reads OWNER/REPO[/POOL]; the pool is the default pool when
// left out.
func parsePoolArg(arg string) (owner, repo, pool string, err error) {
	pool = workflows.DefaultPool
	if i := strings.Count(arg, "/"); i == 2 {
		cut := strings.LastIndex(arg, "/")
		arg, pool = arg[:cut], arg[cut+1:]
	}
	if owner, repo, err = workflows.ParseRepository(arg); err != nil {
		return "", "", "", err
	}
	return owner, repo, pool, workflows.ValidatePoolName(pool)
}

// printer writes tables or JSON.
type printer struct {
	w    io.Writer
	json bool
}

// print writes v as JSON, or else a table of header and rows.
func (p *printer) print(v any, header string, rows func(tw io.Writer)) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	return tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}
