// Command garm-provider-example is a small provider of GARM's external
// provider interface, written to its contract alone, as any GARM provider
// is. Its "instance" is a detached process that, like a cloud instance's
// user data, reports installing, fetches its JIT config files from the
// metadata URL with its instance token, reports idle and runs the
// simulated runner.
//
// Its config file (GARM_PROVIDER_CONFIG_FILE) holds key=value lines:
// state_dir (its records) and runner (the runner command, split on
// spaces).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

type instance struct {
	ProviderID string `json:"provider_id"`
	Name       string `json:"name"`
	OSType     string `json:"os_type"`
	OSName     string `json:"os_name"`
	OSVersion  string `json:"os_version"`
	OSArch     string `json:"os_arch"`
	Status     string `json:"status"`
	PoolID     string `json:"pool_id,omitempty"`
	// Kept for itself.
	PID        int    `json:"pid,omitempty"`
	Controller string `json:"controller,omitempty"`
}

type bootstrap struct {
	Name             string            `json:"name"`
	MetadataURL      string            `json:"metadata-url"`
	CallbackURL      string            `json:"callback-url"`
	InstanceToken    string            `json:"instance-token"`
	PoolID           string            `json:"pool_id"`
	OSType           string            `json:"os_type"`
	Arch             string            `json:"arch"`
	Labels           []string          `json:"labels"`
	ExtraSpecs       map[string]string `json:"extra_specs"`
	JITConfigEnabled bool              `json:"jit_config_enabled"`
}

const (
	exitNotFound  = 30
	exitDuplicate = 31
)

func main() {
	if os.Getenv("EXAMPLE_INSTANCE") != "" {
		if err := runInstance(); err != nil {
			fmt.Fprintln(os.Stderr, "instance:", err)
			os.Exit(1)
		}
		return
	}
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func config() (map[string]string, error) {
	b, err := os.ReadFile(os.Getenv("GARM_PROVIDER_CONFIG_FILE"))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			cfg[k] = v
		}
	}
	if cfg["state_dir"] == "" || cfg["runner"] == "" {
		return nil, errors.New("config needs state_dir and runner")
	}
	return cfg, nil
}

func run() (int, error) {
	cfg, err := config()
	if err != nil {
		return 1, err
	}
	dir := cfg["state_dir"]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 1, err
	}
	// What it was given, for the test: the names of its variables.
	var names []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	sort.Strings(names)
	f, err := os.OpenFile(filepath.Join(dir, "env.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err == nil {
		fmt.Fprintln(f, os.Getenv("GARM_COMMAND"), strings.Join(names, " "))
		f.Close()
	}
	switch cmd := os.Getenv("GARM_COMMAND"); cmd {
	case "CreateInstance":
		return create(cfg, dir)
	case "GetInstance":
		in, ok := find(dir, os.Getenv("GARM_INSTANCE_ID"))
		if !ok {
			return exitNotFound, fmt.Errorf("instance %s not found", os.Getenv("GARM_INSTANCE_ID"))
		}
		return 0, json.NewEncoder(os.Stdout).Encode(status(in))
	case "ListInstances":
		out := []instance{}
		for _, in := range all(dir) {
			if in.PoolID == os.Getenv("GARM_POOL_ID") {
				out = append(out, status(in))
			}
		}
		return 0, json.NewEncoder(os.Stdout).Encode(out)
	case "DeleteInstance":
		in, ok := find(dir, os.Getenv("GARM_INSTANCE_ID"))
		if !ok {
			return exitNotFound, fmt.Errorf("instance %s not found", os.Getenv("GARM_INSTANCE_ID"))
		}
		_ = syscall.Kill(-in.PID, syscall.SIGKILL)
		return 0, os.Remove(filepath.Join(dir, in.Name+".json"))
	case "RemoveAllInstances":
		for _, in := range all(dir) {
			if in.Controller == os.Getenv("GARM_CONTROLLER_ID") {
				_ = syscall.Kill(-in.PID, syscall.SIGKILL)
				_ = os.Remove(filepath.Join(dir, in.Name+".json"))
			}
		}
		return 0, nil
	case "StartInstance", "StopInstance":
		return 0, nil
	default:
		return 1, fmt.Errorf("unknown command %q", cmd)
	}
}

func create(cfg map[string]string, dir string) (int, error) {
	var b bootstrap
	if err := json.NewDecoder(os.Stdin).Decode(&b); err != nil {
		return 1, fmt.Errorf("read bootstrap: %w", err)
	}
	if b.Name == "" || b.MetadataURL == "" || b.CallbackURL == "" || b.InstanceToken == "" || b.PoolID != os.Getenv("GARM_POOL_ID") {
		return 1, fmt.Errorf("incomplete bootstrap for %q", b.Name)
	}
	if _, ok := find(dir, b.Name); ok {
		return exitDuplicate, fmt.Errorf("instance %s exists", b.Name)
	}
	self, err := os.Executable()
	if err != nil {
		return 1, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, b.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 1, err
	}
	defer logFile.Close()
	// Detached, as GARM requires: a session of its own, no stdio of ours.
	cmd := exec.Command(self)
	cmd.Env = []string{"EXAMPLE_INSTANCE=1", "EXAMPLE_NAME=" + b.Name, "EXAMPLE_METADATA=" + b.MetadataURL,
		"EXAMPLE_CALLBACK=" + b.CallbackURL, "EXAMPLE_TOKEN=" + b.InstanceToken, "EXAMPLE_RUNNER=" + cfg["runner"],
		"EXAMPLE_JIT=" + fmt.Sprint(b.JITConfigEnabled), "PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	in := instance{ProviderID: "example-" + b.Name, Name: b.Name, OSType: b.OSType, OSName: "example", OSVersion: "1",
		OSArch: b.Arch, Status: "running", PoolID: b.PoolID, PID: cmd.Process.Pid, Controller: os.Getenv("GARM_CONTROLLER_ID")}
	rec, _ := json.Marshal(in)
	if err := os.WriteFile(filepath.Join(dir, b.Name+".json"), rec, 0o600); err != nil {
		_ = syscall.Kill(-in.PID, syscall.SIGKILL)
		return 1, err
	}
	_ = cmd.Process.Release()
	return 0, json.NewEncoder(os.Stdout).Encode(status(in))
}

// status is the instance as GARM sees it: running while its process lives.
func status(in instance) instance {
	if syscall.Kill(in.PID, 0) != nil {
		in.Status = "stopped"
	}
	in.PID, in.Controller = 0, ""
	return in
}

func all(dir string) []instance {
	entries, _ := os.ReadDir(dir)
	var out []instance
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		var in instance
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && json.Unmarshal(b, &in) == nil {
			out = append(out, in)
		}
	}
	return out
}

// find looks an instance up by provider_id or by name, as GARM may pass
// either.
func find(dir, id string) (instance, bool) {
	for _, in := range all(dir) {
		if in.ProviderID == id || in.Name == id {
			return in, true
		}
	}
	return instance{}, false
}

// runInstance is the instance's user data: report installing, fetch the
// JIT config files, report idle, run the runner.
func runInstance() error {
	token := os.Getenv("EXAMPLE_TOKEN")
	callback := func(status, msg string) error {
		body, _ := json.Marshal(map[string]any{"status": status, "message": msg})
		req, _ := http.NewRequest("POST", os.Getenv("EXAMPLE_CALLBACK")+"/status", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s: %s", status, resp.Status)
		}
		return nil
	}
	get := func(path string) ([]byte, error) {
		req, _ := http.NewRequest("GET", os.Getenv("EXAMPLE_METADATA")+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return b, nil
	}
	if err := callback("installing", "fetching the runner's configuration"); err != nil {
		return err
	}
	if os.Getenv("EXAMPLE_JIT") != "true" {
		_ = callback("failed", "this example runs JIT runners only")
		return errors.New("no JIT config")
	}
	files := map[string]string{}
	for _, name := range []string{"runner", "credentials", "credentials_rsaparams"} {
		b, err := get("/credentials/" + name)
		if err != nil {
			_ = callback("failed", err.Error())
			return err
		}
		files["."+name] = base64.StdEncoding.EncodeToString(b)
	}
	if _, err := get("/system/service-name"); err != nil {
		return err
	}
	jit, _ := json.Marshal(files)
	args := strings.Fields(os.Getenv("EXAMPLE_RUNNER"))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"ACTIONS_RUNNER_INPUT_JITCONFIG=" + base64.StdEncoding.EncodeToString(jit), "PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		_ = callback("failed", err.Error())
		return err
	}
	if err := callback("idle", "runner started"); err != nil {
		return err
	}
	// Its token opens nothing once it is idle.
	if _, err := get("/credentials/runner"); err == nil {
		return errors.New("the instance token still opened the metadata after idle")
	}
	fmt.Println("token closed after idle: ok")
	err := cmd.Wait()
	time.Sleep(100 * time.Millisecond)
	return err
}
