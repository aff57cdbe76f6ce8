// Package external runs GARM's external providers unchanged: executables
// written for GARM (OpenStack, Azure, GCP, LXD, Incus, Kubernetes...) are
// called as GARM calls them. Each call runs the executable with GARM_*
// variables only (plus the name prefixes its declaration allows), the
// bootstrap JSON on stdin for CreateInstance, a timeout and a bound on its
// output; exit code 30 is "not found" and 31 "duplicate". The instance then
// fetches its JIT config from the agent's instance listener (Sessions).
//
// Which executables an agent runs is its operator's decision
// (--external-provider); a pool only names one of them.
package external

import (
	"bytes"
	"context"
	"crypto/sha1"
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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/garo-run/garo/activities/provider"
)

// Kind is this provider's name in pool configurations.
const Kind = "external"

// Executable is one declared GARM provider.
type Executable struct {
	// Name is what a pool's provider option name picks.
	Name string
	// Path is the executable; ConfigFile goes to it as
	// GARM_PROVIDER_CONFIG_FILE.
	Path, ConfigFile string
	// EnvPrefixes name the variables of the agent's environment it gets
	// beyond GARM's own (GARM passes no other, not even PATH).
	EnvPrefixes []string
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ParseExecutable reads a declaration NAME=EXECUTABLE[,config=FILE][,env=PREFIX:PREFIX].
func ParseExecutable(decl string) (Executable, error) {
	name, rest, ok := strings.Cut(decl, "=")
	if !ok || !namePattern.MatchString(name) {
		return Executable{}, fmt.Errorf("external provider %q: want NAME=EXECUTABLE[,config=FILE][,env=PREFIX:PREFIX], NAME of lower-case letters, digits, '-' and '_'", decl)
	}
	parts := strings.Split(rest, ",")
	e := Executable{Name: name, Path: parts[0]}
	if !filepath.IsAbs(e.Path) {
		return Executable{}, fmt.Errorf("external provider %s: executable %q must be an absolute path", name, e.Path)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "config":
			e.ConfigFile = v
		case "env":
			e.EnvPrefixes = strings.FieldsFunc(v, func(r rune) bool { return r == ':' })
		default:
			return Executable{}, fmt.Errorf("external provider %s: unknown setting %q (config or env)", name, k)
		}
	}
	if st, err := os.Stat(e.Path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return Executable{}, fmt.Errorf("external provider %s: %s is not an executable file", name, e.Path)
	}
	return e, nil
}

// Config configures the provider.
type Config struct {
	Executables []Executable
	// StateDir records each instance: which executable made it and its
	// provider_id, which GARM's calls take.
	StateDir string
	// Agent names the agent: GARM_CONTROLLER_ID and pool ids derive from it.
	Agent string
	// Sessions hand instances their JIT config; nil: no instance listener,
	// and Create refuses.
	Sessions *Sessions
	// Tools lists the actions runner's downloads for a repository, as
	// GitHub's API does (the bootstrap's tools).
	Tools func(ctx context.Context, repository string) ([]Tool, error)
	// CreateTimeout bounds CreateInstance (default 10m), CallTimeout the
	// other calls (default 2m); MaxOutput the stdout and stderr read of one
	// call (default 1 MiB).
	CreateTimeout, CallTimeout time.Duration
	MaxOutput                  int
	Logger                     *slog.Logger
}

// Tool is one download of the actions runner.
type Tool struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	DownloadURL  string `json:"download_url"`
	Filename     string `json:"filename"`
	SHA256       string `json:"sha256_checksum,omitempty"`
}

// Provider dispatches to the declared executables.
type Provider struct {
	cfg  Config
	log  *slog.Logger
	byNm map[string]Executable
	lock provider.NameLocks
	// waitDelay is how long a call waits for its output to close once the
	// executable has exited (a child it failed to detach holds it).
	waitDelay time.Duration
}

// New returns the provider of the declared executables.
func New(cfg Config) (*Provider, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CreateTimeout == 0 {
		cfg.CreateTimeout = 10 * time.Minute
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 2 * time.Minute
	}
	if cfg.MaxOutput == 0 {
		cfg.MaxOutput = 1 << 20
	}
	if cfg.StateDir == "" {
		return nil, errors.New("external provider: no state directory")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("external provider state dir: %w", err)
	}
	p := &Provider{cfg: cfg, log: cfg.Logger, byNm: map[string]Executable{}, waitDelay: 5 * time.Second}
	for _, e := range cfg.Executables {
		if _, dup := p.byNm[e.Name]; dup {
			return nil, fmt.Errorf("external provider %s declared twice", e.Name)
		}
		p.byNm[e.Name] = e
	}
	return p, nil
}

// Kind returns "external".
func (p *Provider) Kind() string { return Kind }

// Options: name picks a declared executable; the others go into the
// bootstrap as a GARM pool's fields.
func (p *Provider) Options() []provider.Option {
	names := slices.Sorted(maps.Keys(p.byNm))
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	return []provider.Option{
		{Name: "name", Required: true, Pattern: strings.Join(quoted, "|"), Usage: "one of the agent's external providers: " + strings.Join(names, ", ")},
		{Name: "image", Pattern: `[ -~]{1,255}`, Usage: "the bootstrap's image"},
		{Name: "flavor", Pattern: `[ -~]{1,255}`, Usage: "the bootstrap's flavor (instance size)"},
		{Name: "osType", Pattern: `linux|windows`, Usage: "the bootstrap's os_type (default linux)"},
		{Name: "arch", Pattern: `amd64|arm64|arm|386`, Usage: "the bootstrap's arch (default amd64)"},
		{Name: "extra.", KeyPattern: `[A-Za-z0-9_.-]{1,64}`, Pattern: `[ -~]{0,1000}`, Usage: "extra.KEY=VALUE: the bootstrap's extra_specs, which the provider reads"},
	}
}

// record is an instance's file in the state directory.
type record struct {
	Name       string            `json:"name"`
	Provider   string            `json:"provider"`
	ProviderID string            `json:"providerId,omitempty"`
	PoolID     string            `json:"poolId"`
	Tags       map[string]string `json:"tags,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
}

var runnerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (p *Provider) recordPath(name string) string { return filepath.Join(p.cfg.StateDir, name+".json") }

func (p *Provider) read(name string) (record, error) {
	var r record
	b, err := os.ReadFile(p.recordPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("%w: %s", provider.ErrNotFound, name)
	}
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

func (p *Provider) write(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := p.recordPath(r.Name) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.recordPath(r.Name))
}

// uuid is a name-based UUID (version 5 layout) of s: GARM's ids are UUIDs,
// and providers may check them.
func uuid(s string) string {
	h := sha1.Sum([]byte(s))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (p *Provider) controllerID() string { return uuid("garo-agent:" + p.cfg.Agent) }

// poolID is the GARM pool id of a repository's runners on one executable.
func (p *Provider) poolID(exe string, tags map[string]string) string {
	return uuid("garo-pool:" + p.cfg.Agent + "/" + exe + "/" + tags["garo-repository"])
}

// bootstrap is GARM's BootstrapInstance, with its keys exactly.
type bootstrap struct {
	Name              string            `json:"name"`
	Tools             []Tool            `json:"tools"`
	RepoURL           string            `json:"repo_url"`
	CallbackURL       string            `json:"callback-url"`
	MetadataURL       string            `json:"metadata-url"`
	InstanceToken     string            `json:"instance-token"`
	SSHKeys           []string          `json:"ssh-keys"`
	ExtraSpecs        map[string]string `json:"extra_specs"`
	GitHubRunnerGroup string            `json:"github-runner-group"`
	CACertBundle      []byte            `json:"ca-cert-bundle"`
	Arch              string            `json:"arch"`
	OSType            string            `json:"os_type"`
	Flavor            string            `json:"flavor"`
	Image             string            `json:"image"`
	Labels            []string          `json:"labels"`
	PoolID            string            `json:"pool_id"`
	UserDataOptions   map[string]any    `json:"user_data_options"`
	JITConfigEnabled  bool              `json:"jit_config_enabled"`
}

// instance is GARM's ProviderInstance, as providers print it.
type instance struct {
	ProviderID    string `json:"provider_id"`
	Name          string `json:"name"`
	OSType        string `json:"os_type"`
	OSName        string `json:"os_name"`
	OSVersion     string `json:"os_version"`
	OSArch        string `json:"os_arch"`
	Status        string `json:"status"`
	ProviderFault string `json:"provider_fault"`
}

// Exit codes of GARM's contract.
const (
	exitNotFound  = 30
	exitDuplicate = 31
)

// Create runs CreateInstance with the bootstrap on stdin. The instance's
// JIT config waits for it on the instance listener, behind its token.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Instance, error) {
	if !runnerName.MatchString(req.Name) {
		return provider.Instance{}, fmt.Errorf("%w: invalid instance name %q", provider.ErrRefused, req.Name)
	}
	if err := provider.CheckOptions(p.Options(), req.Options); err != nil {
		return provider.Instance{}, fmt.Errorf("%w: %w", provider.ErrRefused, err)
	}
	exe := p.byNm[req.Options["name"]]
	if p.cfg.Sessions == nil {
		return provider.Instance{}, fmt.Errorf("%w: external providers need the agent's instance listener (--instance-listen)", provider.ErrRefused)
	}
	defer p.lock.Lock(req.Name)()
	if r, err := p.read(req.Name); err == nil {
		if in, err := p.get(ctx, r); err == nil {
			return in, fmt.Errorf("%w: %s", provider.ErrDuplicate, req.Name)
		}
	}
	var tools []Tool
	if p.cfg.Tools != nil {
		var err error
		if tools, err = p.cfg.Tools(ctx, req.Tags["garo-repository"]); err != nil {
			return provider.Instance{}, fmt.Errorf("list the runner's downloads: %w", err)
		}
	}
	token, metadataURL, callbackURL, err := p.cfg.Sessions.Open(req.Name, req.Tags["garo-repository"], req.Env)
	if err != nil {
		return provider.Instance{}, err
	}
	rec := record{Name: req.Name, Provider: exe.Name, PoolID: p.poolID(exe.Name, req.Tags), Tags: req.Tags, CreatedAt: time.Now().UTC()}
	// Recorded before the call: an instance is never made that the agent
	// does not know to delete.
	if err := p.write(rec); err != nil {
		p.cfg.Sessions.Close(req.Name)
		return provider.Instance{}, fmt.Errorf("record instance %s: %w", req.Name, err)
	}
	b := bootstrap{Name: req.Name, Tools: tools, RepoURL: req.RepoURL, CallbackURL: callbackURL, MetadataURL: metadataURL,
		InstanceToken: token, SSHKeys: []string{}, ExtraSpecs: map[string]string{}, Arch: orDefault(req.Options["arch"], "amd64"),
		OSType: orDefault(req.Options["osType"], "linux"), Flavor: req.Options["flavor"], Image: req.Options["image"],
		Labels: req.Labels, PoolID: rec.PoolID, UserDataOptions: map[string]any{}, JITConfigEnabled: req.Env[envJITConfig] != ""}
	for k, v := range req.Options {
		if key, ok := strings.CutPrefix(k, "extra."); ok {
			b.ExtraSpecs[key] = v
		}
	}
	stdin, err := json.Marshal(b)
	if err != nil {
		return provider.Instance{}, err
	}
	out, code, err := p.run(ctx, exe, "CreateInstance", map[string]string{"GARM_POOL_ID": rec.PoolID}, stdin)
	switch {
	case code == exitDuplicate:
		in, gerr := p.get(ctx, rec)
		if gerr != nil {
			return provider.Instance{}, fmt.Errorf("%s says %s exists, but GetInstance: %w", exe.Name, req.Name, gerr)
		}
		return in, fmt.Errorf("%w: %s", provider.ErrDuplicate, req.Name)
	case err != nil:
		p.cfg.Sessions.Close(req.Name)
		return provider.Instance{}, fmt.Errorf("create instance %s with %s: %w", req.Name, exe.Name, err)
	}
	var pi instance
	if err := json.Unmarshal(out, &pi); err != nil || pi.ProviderID == "" || pi.Name == "" {
		p.cfg.Sessions.Close(req.Name)
		return provider.Instance{}, fmt.Errorf("create instance %s with %s: want a ProviderInstance with provider_id and name, got %q", req.Name, exe.Name, truncate(string(out), 256))
	}
	rec.ProviderID = pi.ProviderID
	if err := p.write(rec); err != nil {
		return provider.Instance{}, fmt.Errorf("record instance %s: %w", req.Name, err)
	}
	if pi.Status != "running" {
		return provider.Instance{}, fmt.Errorf("create instance %s with %s: status %q, want running: %s", req.Name, exe.Name, pi.Status, truncate(pi.ProviderFault, 512))
	}
	p.log.Info("External instance created", "runner", req.Name, "provider", exe.Name, "providerId", pi.ProviderID)
	return p.toInstance(rec, pi), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (p *Provider) toInstance(r record, pi instance) provider.Instance {
	in := provider.Instance{Name: r.Name, ID: pi.ProviderID, State: provider.StateRunning, Tags: r.Tags, CreatedAt: r.CreatedAt}
	if pi.Status != "running" {
		in.State, in.ExitCode = provider.StateExited, 1
		if pi.Status == "stopped" {
			in.ExitCode = 0
		}
	}
	return in
}

// instanceID is what GARM passes as GARM_INSTANCE_ID: the provider_id, or
// the name when the create failed before one was known.
func instanceID(r record) string { return orDefault(r.ProviderID, r.Name) }

func (p *Provider) get(ctx context.Context, r record) (provider.Instance, error) {
	exe, ok := p.byNm[r.Provider]
	if !ok {
		return provider.Instance{}, fmt.Errorf("instance %s was made by external provider %s, which this agent no longer declares", r.Name, r.Provider)
	}
	out, code, err := p.run(ctx, exe, "GetInstance", map[string]string{"GARM_INSTANCE_ID": instanceID(r)}, nil)
	if code == exitNotFound {
		return provider.Instance{}, fmt.Errorf("%w: %s", provider.ErrNotFound, r.Name)
	}
	if err != nil {
		return provider.Instance{}, fmt.Errorf("get instance %s from %s: %w", r.Name, exe.Name, err)
	}
	var pi instance
	if err := json.Unmarshal(out, &pi); err != nil {
		return provider.Instance{}, fmt.Errorf("get instance %s from %s: not a ProviderInstance: %q", r.Name, exe.Name, truncate(string(out), 256))
	}
	if r.ProviderID == "" {
		pi.ProviderID = orDefault(pi.ProviderID, r.Name)
	}
	return p.toInstance(r, pi), nil
}

// Get returns the instance called name, if this agent made it.
func (p *Provider) Get(ctx context.Context, name string) (provider.Instance, error) {
	r, err := p.read(name)
	if err != nil {
		return provider.Instance{}, err
	}
	return p.get(ctx, r)
}

// Delete runs DeleteInstance; an instance the provider no longer knows
// (exit 30) is deleted.
func (p *Provider) Delete(ctx context.Context, name string) error {
	defer p.lock.Lock(name)()
	r, err := p.read(name)
	if err != nil {
		return err
	}
	exe, ok := p.byNm[r.Provider]
	if !ok {
		return fmt.Errorf("instance %s was made by external provider %s, which this agent no longer declares", r.Name, r.Provider)
	}
	if _, code, err := p.run(ctx, exe, "DeleteInstance", map[string]string{"GARM_INSTANCE_ID": instanceID(r)}, nil); err != nil && code != exitNotFound {
		return fmt.Errorf("delete instance %s with %s: %w", name, exe.Name, err)
	}
	if p.cfg.Sessions != nil {
		p.cfg.Sessions.Close(name)
	}
	if err := os.Remove(p.recordPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	p.log.Info("External instance deleted", "runner", name, "provider", exe.Name)
	return nil
}

// List returns the instances this agent made whose tags include all of
// tags: one ListInstances per executable and pool.
func (p *Provider) List(ctx context.Context, tags map[string]string) ([]provider.Instance, error) {
	entries, err := os.ReadDir(p.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	type pool struct{ exe, id string }
	byPool := map[pool][]record{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		r, err := p.read(name)
		if err != nil || !provider.HasTags(r.Tags, tags) {
			continue
		}
		byPool[pool{r.Provider, r.PoolID}] = append(byPool[pool{r.Provider, r.PoolID}], r)
	}
	var out []provider.Instance
	for _, k := range slices.SortedFunc(maps.Keys(byPool), func(a, b pool) int { return strings.Compare(a.exe+a.id, b.exe+b.id) }) {
		exe, ok := p.byNm[k.exe]
		if !ok {
			continue
		}
		b, _, err := p.run(ctx, exe, "ListInstances", map[string]string{"GARM_POOL_ID": k.id}, nil)
		if err != nil {
			return nil, fmt.Errorf("list instances of %s: %w", exe.Name, err)
		}
		var list []instance
		if err := json.Unmarshal(b, &list); err != nil && len(bytes.TrimSpace(b)) > 0 {
			return nil, fmt.Errorf("list instances of %s: not an array of ProviderInstance: %q", exe.Name, truncate(string(b), 256))
		}
		byName := map[string]instance{}
		for _, in := range list {
			byName[in.Name] = in
		}
		for _, r := range byPool[k] {
			if in, ok := byName[r.Name]; ok {
				out = append(out, p.toInstance(r, in))
			}
		}
	}
	return out, nil
}

// run calls the executable as GARM does: GARM_* variables and the
// declared prefixes only, the command's timeout, output bounded, stderr to
// the log. It returns stdout, the exit code and an error for any exit but
// 0.
func (p *Provider) run(ctx context.Context, exe Executable, command string, vars map[string]string, stdin []byte) ([]byte, int, error) {
	timeout := p.cfg.CallTimeout
	if command == "CreateInstance" {
		timeout = p.cfg.CreateTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe.Path)
	cmd.Env = []string{"GARM_COMMAND=" + command, "GARM_CONTROLLER_ID=" + p.controllerID(),
		"GARM_PROVIDER_CONFIG_FILE=" + exe.ConfigFile, "GARM_INTERFACE_VERSION=v0.1.1"}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GARM_") {
			continue
		}
		for _, prefix := range exe.EnvPrefixes {
			if strings.HasPrefix(k, prefix) {
				cmd.Env = append(cmd.Env, kv)
				break
			}
		}
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	// Output beyond the bound ends the call at once.
	stdout := &limited{max: p.cfg.MaxOutput, over: cancel}
	stderr := &limited{max: p.cfg.MaxOutput, over: cancel}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, killed whole at the timeout; and a child it
	// failed to detach cannot hold the call open past WaitDelay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = p.waitDelay
	began := time.Now()
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" {
			p.log.Info("External provider said", "provider", exe.Name, "command", command, "line", truncate(line, 1024))
		}
	}
	switch {
	case stdout.exceeded || stderr.exceeded:
		return nil, code, fmt.Errorf("%s %s wrote more than %d bytes", exe.Name, command, p.cfg.MaxOutput)
	case ctx.Err() == context.DeadlineExceeded:
		return nil, -1, fmt.Errorf("%s %s timed out after %s", exe.Name, command, timeout)
	case errors.Is(err, exec.ErrWaitDelay):
		p.log.Warn("External provider left a child holding its output; detach instance processes", "provider", exe.Name, "command", command)
	case err != nil:
		return stdout.Bytes(), code, fmt.Errorf("%s %s exited with %d after %s: %s %s", exe.Name, command, code,
			time.Since(began).Round(time.Millisecond), truncate(strings.TrimSpace(stdout.String()), 512), truncate(strings.TrimSpace(stderr.String()), 512))
	}
	return stdout.Bytes(), code, nil
}

// limited keeps at most max bytes; when more come it calls over and
// refuses them.
// (Not an embedded bytes.Buffer: its ReadFrom would bypass Write.)
type limited struct {
	buf      bytes.Buffer
	max      int
	over     func()
	exceeded bool
}

func (l *limited) Write(b []byte) (int, error) {
	if l.buf.Len()+len(b) > l.max {
		if !l.exceeded {
			l.exceeded = true
			l.over()
		}
		return 0, errors.New("output exceeds its bound")
	}
	return l.buf.Write(b)
}

func (l *limited) Bytes() []byte  { return l.buf.Bytes() }
func (l *limited) String() string { return l.buf.String() }

// CacheTools keeps what fetch lists for each repository for ttl: the
// runner's downloads change with its releases, not with each instance.
func CacheTools(ttl time.Duration, fetch func(ctx context.Context, repository string) ([]Tool, error)) func(ctx context.Context, repository string) ([]Tool, error) {
	type entry struct {
		tools []Tool
		at    time.Time
	}
	var mu sync.Mutex
	cache := map[string]entry{}
	return func(ctx context.Context, repository string) ([]Tool, error) {
		mu.Lock()
		e, ok := cache[repository]
		mu.Unlock()
		if ok && time.Since(e.at) < ttl {
			return e.tools, nil
		}
		tools, err := fetch(ctx, repository)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		cache[repository] = entry{tools, time.Now()}
		mu.Unlock()
		return tools, nil
	}
}
