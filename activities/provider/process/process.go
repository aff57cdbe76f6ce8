// Package process is the provider that runs each runner as a child process
// of the agent, from a command template: for real use ./run.sh of an
// unpacked actions runner, in garo dev the simulated runner. Secrets (the
// JIT config) reach the process through its environment or stdin, never
// its arguments. Each instance is recorded in a state directory, so that a
// restarted agent adopts the processes still running and cleans up the
// rest.
package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/garo-run/garo/activities/provider"
)

// Kind is this provider's name in pool configurations.
const Kind = "process"

// Config configures the provider.
type Config struct {
	// StateDir holds one record per instance and each instance's log.
	StateDir string
	// Command is the argv template; each element is a text/template over
	// {{.Name}} and {{.Tags}} (e.g. {{index .Tags "repo"}}).
	Command []string
	// Dir is the working directory of the processes (default StateDir).
	Dir string
	// Env (KEY=VALUE) is given to every process, beside the variables of
	// the agent's environment that AllowEnv and PassEnv name.
	Env []string
	// PassEnv names more of the agent's variables a runner gets.
	PassEnv []string
	// StopTimeout is how long Delete waits after SIGTERM before SIGKILL
	// (default 10s).
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// Provider runs instances as local processes.
type Provider struct {
	cfg  Config
	tmpl []*template.Template
	log  *slog.Logger
	mu   sync.Mutex
	// children are the processes this provider started, by name, so that
	// their exit is reaped; adopted ones are watched through their pid.
	children map[string]*child
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int
}

// record is an instance's file in the state directory.
type record struct {
	Name      string            `json:"name"`
	PID       int               `json:"pid"`
	StartTick string            `json:"startTick,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	Exited    bool              `json:"exited,omitempty"`
	ExitCode  int               `json:"exitCode,omitempty"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// New returns a provider over cfg.StateDir, adopting what it records.
func New(cfg Config) (*Provider, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("process provider: no command")
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir == "" {
		cfg.Dir = cfg.StateDir
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process provider state dir: %w", err)
	}
	p := &Provider{cfg: cfg, log: cfg.Logger, children: map[string]*child{}}
	for _, arg := range cfg.Command {
		t, err := template.New("arg").Option("missingkey=zero").Parse(arg)
		if err != nil {
			return nil, fmt.Errorf("process provider: command template %q: %w", arg, err)
		}
		p.tmpl = append(p.tmpl, t)
	}
	return p, nil
}

// Kind returns "process".
func (p *Provider) Kind() string { return Kind }

// envOption is the family of options that set a runner's variables.
const envOption = "env."

// Options: env.NAME=VALUE sets the variable NAME of the pool's runners.
// The runner's own variables (its JIT config, GARO_RUNNER_NAME) win over
// one of the same name.
func (p *Provider) Options() []provider.Option {
	return []provider.Option{{Name: envOption, KeyPattern: `[A-Za-z_][A-Za-z0-9_]*`,
		Usage: "env.NAME=VALUE sets the variable NAME of the pool's runners; not for secrets, which the pool's configuration shows to its readers"}}
}

func (p *Provider) recordPath(name string) string {
	return filepath.Join(p.cfg.StateDir, name+".json")
}

func (p *Provider) logPath(name string) string {
	return filepath.Join(p.cfg.StateDir, name+".log")
}

func (p *Provider) exitPath(name string) string {
	return filepath.Join(p.cfg.StateDir, name+".exit")
}

// wrapper runs the runner command ("$0" "$@") in the foreground and then
// records its exit code in $GARO_EXIT_FILE, so that the exit of a runner
// adopted after an agent restart (whose parent is no longer the agent) is
// known. Stopping the process group stops both; a runner that is deleted
// needs no exit code.
const wrapper = `"$0" "$@"
code=$?
printf '%s\n' "$code" > "$GARO_EXIT_FILE.tmp" && mv -f "$GARO_EXIT_FILE.tmp" "$GARO_EXIT_FILE"
exit "$code"`

// exitCode is the code an adopted runner's wrapper recorded; -1 when it
// recorded none (the wrapper itself was killed): not a clean exit.
func (p *Provider) exitCode(name string) int {
	b, err := os.ReadFile(p.exitPath(name))
	if err != nil {
		return -1
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return code
}

func (p *Provider) read(name string) (record, error) {
	b, err := os.ReadFile(p.recordPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return record{}, fmt.Errorf("%w: %s", provider.ErrNotFound, name)
	}
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("instance record %s: %w", name, err)
	}
	return r, nil
}

func (p *Provider) write(r record) error {
	b, _ := json.Marshal(r)
	tmp := p.recordPath(r.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.recordPath(r.Name))
}

// instance describes r as it is now: running while its process lives.
func (p *Provider) instance(r record) provider.Instance {
	in := provider.Instance{Name: r.Name, ID: strconv.Itoa(r.PID), Tags: r.Tags, CreatedAt: r.CreatedAt, State: provider.StateRunning}
	if c, ok := p.children[r.Name]; ok {
		select {
		case <-c.done:
			in.State, in.ExitCode = provider.StateExited, c.code
		default:
		}
		return in
	}
	switch {
	case r.Exited:
		in.State, in.ExitCode = provider.StateExited, r.ExitCode
	case !alive(r.PID, r.StartTick):
		in.State, in.ExitCode = provider.StateExited, p.exitCode(r.Name)
	}
	return in
}

// Create starts the instance's process; an existing one is returned with
// ErrDuplicate.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Instance, error) {
	if !namePattern.MatchString(req.Name) {
		return provider.Instance{}, fmt.Errorf("invalid instance name %q", req.Name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, err := p.read(req.Name); err == nil {
		return p.instance(r), fmt.Errorf("%w: %s", provider.ErrDuplicate, req.Name)
	} else if !errors.Is(err, provider.ErrNotFound) {
		return provider.Instance{}, err
	}
	var args []string
	data := struct {
		Name string
		Tags map[string]string
	}{req.Name, req.Tags}
	for _, t := range p.tmpl {
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return provider.Instance{}, fmt.Errorf("render command: %w", err)
		}
		args = append(args, b.String())
	}
	logFile, err := os.OpenFile(p.logPath(req.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return provider.Instance{}, fmt.Errorf("open instance log: %w", err)
	}
	defer logFile.Close()
	_ = os.Remove(p.exitPath(req.Name))
	cmd := exec.Command("/bin/sh", append([]string{"-c", wrapper}, args...)...)
	cmd.Dir = p.cfg.Dir
	// Later entries win over earlier ones of the same name: the runner's
	// own variables over the pool's, the pool's over the agent's.
	cmd.Env = append(p.baseEnv(), p.cfg.Env...)
	for _, k := range slices.Sorted(maps.Keys(req.Options)) {
		if name, ok := strings.CutPrefix(k, envOption); ok {
			cmd.Env = append(cmd.Env, name+"="+req.Options[k])
		}
	}
	cmd.Env = append(cmd.Env, "GARO_RUNNER_NAME="+req.Name, "GARO_EXIT_FILE="+p.exitPath(req.Name))
	for _, k := range slices.Sorted(maps.Keys(req.Env)) {
		cmd.Env = append(cmd.Env, k+"="+req.Env[k])
	}
	if req.Stdin != nil {
		cmd.Stdin = bytes.NewReader(req.Stdin)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Delete stops the runner and its children, and
	// an agent restart does not take the runner down.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return provider.Instance{}, fmt.Errorf("start %s: %w", args[0], err)
	}
	r := record{Name: req.Name, PID: cmd.Process.Pid, StartTick: startTick(cmd.Process.Pid), Tags: req.Tags,
		CreatedAt: time.Now().UTC()}
	if err := p.write(r); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return provider.Instance{}, fmt.Errorf("record instance %s: %w", req.Name, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	p.children[req.Name] = c
	go func() {
		err := cmd.Wait()
		c.code = cmd.ProcessState.ExitCode()
		close(c.done)
		p.log.Info("Runner process exited", "runner", req.Name, "pid", r.PID, "exitCode", c.code, "error", err)
		p.mu.Lock()
		defer p.mu.Unlock()
		if cur, err := p.read(req.Name); err == nil && cur.PID == r.PID {
			cur.Exited, cur.ExitCode = true, c.code
			_ = p.write(cur)
		}
	}()
	p.log.Info("Runner process started", "runner", req.Name, "pid", r.PID)
	return p.instance(r), nil
}

// Exited returns a channel closed when the runner process called name,
// started by this provider, exits; nil for one adopted after a restart,
// whose exit is seen by a look at its pid.
func (p *Provider) Exited(name string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.children[name]; ok {
		return c.done
	}
	return nil
}

// AllowEnv are the variables of the agent's environment every runner
// gets; nothing else of it (the agent's tokens, its Temporal key) reaches
// job code, which is hostile. The runner's own inputs
// (ACTIONS_RUNNER_INPUT_*) come with each request, and GARO_RUNNER_NAME
// and GARO_EXIT_FILE (where the wrapper records the exit code) are set
// per runner; the shell adds PWD.
var AllowEnv = []string{"PATH", "HOME", "LANG", "TMPDIR"}

// baseEnv is the part of the agent's environment a runner gets.
func (p *Provider) baseEnv() []string {
	var env []string
	for _, k := range append(slices.Clone(AllowEnv), p.cfg.PassEnv...) {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Delete stops the process group (SIGTERM, then SIGKILL after
// StopTimeout) and forgets the instance.
func (p *Provider) Delete(ctx context.Context, name string) error {
	p.mu.Lock()
	r, err := p.read(name)
	c := p.children[name]
	var running bool
	if err == nil {
		running = p.instance(r).State == provider.StateRunning
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	if running {
		if err := p.stop(ctx, r, c); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.children, name)
	if err := os.Remove(p.recordPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget instance %s: %w", name, err)
	}
	_ = os.Remove(p.logPath(name))
	_ = os.Remove(p.exitPath(name))
	return nil
}

func (p *Provider) stop(ctx context.Context, r record, c *child) error {
	exited := func() bool {
		if c != nil {
			select {
			case <-c.done:
			default:
				return false
			}
		} else if alive(r.PID, r.StartTick) {
			return false
		}
		// The wrapper is gone; so must be the rest of its process group.
		return !groupAlive(r.PID)
	}
	_ = syscall.Kill(-r.PID, syscall.SIGTERM)
	deadline := time.Now().Add(p.cfg.StopTimeout)
	for !exited() {
		if time.Now().After(deadline) {
			p.log.Warn("Runner process ignored SIGTERM; killing it", "runner", r.Name, "pid", r.PID)
			_ = syscall.Kill(-r.PID, syscall.SIGKILL)
			deadline = time.Now().Add(p.cfg.StopTimeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop runner process %s: %w", r.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Get returns the instance called name.
func (p *Provider) Get(ctx context.Context, name string) (provider.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, err := p.read(name)
	if err != nil {
		return provider.Instance{}, err
	}
	return p.instance(r), nil
}

// List returns the recorded instances whose tags include tags, by name.
func (p *Provider) List(ctx context.Context, tags map[string]string) ([]provider.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(p.cfg.StateDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []provider.Instance
	for _, f := range files {
		r, err := p.read(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			p.log.Warn("Skipping unreadable instance record", "file", f, "error", err)
			continue
		}
		if provider.HasTags(r.Tags, tags) {
			out = append(out, p.instance(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// alive reports whether pid runs and is the process recorded (its start
// time matches, so a reused pid is not taken for it).
func alive(pid int, tick string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	if st := startTick(pid); tick != "" && st != "" && st != tick {
		return false
	}
	return !zombie(pid)
}

// startTick is the start time of pid in clock ticks since boot (Linux), or
// "" where /proc is not available.
func startTick(pid int) string {
	f := procStat(pid)
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// groupAlive reports whether a process of process group pgid runs; a
// zombie, which waits for a parent (often init) to reap it, does not count.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	want := strconv.Itoa(pgid)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 2 && f[2] == want && f[0] != "Z" {
			return true
		}
	}
	return false
}

func zombie(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && f[0] == "Z"
}

// procStat returns the fields of /proc/PID/stat after the command name.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}
