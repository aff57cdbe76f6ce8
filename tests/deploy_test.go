package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// deployChecks knows what the tested configuration accepts: garo's flags
// by command, garo-temporal's flags, the variables deploy/temporal's
// configuration and scripts read, and the certificates garo dev certs
// writes for agent lab-1.
type deployChecks struct {
	t        *testing.T
	flags    map[string]map[string]bool
	envRead  map[string]bool
	certs    map[string]bool
	where    string
	sawAgent bool
}

func newDeployChecks(t *testing.T) *deployChecks {
	d := &deployChecks{t: t, flags: map[string]map[string]bool{}, envRead: map[string]bool{}, certs: map[string]bool{}}
	flag := regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)
	for _, cmd := range []string{"server", "agent"} {
		out, _ := exec.Command(garoBin, cmd, "--help").CombinedOutput()
		d.flags[cmd] = map[string]bool{}
		for _, m := range flag.FindAllStringSubmatch(string(out), -1) {
			d.flags[cmd][m[1]] = true
		}
		require.NotEmpty(t, d.flags[cmd], "flags of garo %s", cmd)
	}
	main, err := os.ReadFile("../deploy/temporal/main.go")
	require.NoError(t, err)
	d.flags["garo-temporal"] = map[string]bool{}
	for _, m := range regexp.MustCompile(`fs\.(?:String|Var|Bool)\((?:&\w+, )?"([a-z-]+)"`).FindAllStringSubmatch(string(main), -1) {
		d.flags["garo-temporal"][m[1]] = true
	}
	for _, f := range []string{"../deploy/temporal/config/garo.yaml", "../deploy/temporal/schema.sh"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`(?:env "|\$\{)((?:GARO|TEMPORAL)_[A-Z_]+)`).FindAllStringSubmatch(string(b), -1) {
			d.envRead[m[1]] = true
		}
	}
	dir := t.TempDir()
	out, err := exec.Command(garoBin, "dev", "certs", "--dir", dir, "--agent", "lab-1").CombinedOutput()
	require.NoError(t, err, "%s", out)
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, f := range files {
		d.certs[f.Name()] = true
	}
	return d
}

// command checks one command line of garo or garo-temporal.
func (d *deployChecks) command(bin string, args []string) {
	t := d.t
	cmd := filepath.Base(bin)
	if cmd == "garo" {
		require.NotEmpty(t, args, "%s: garo without a command", d.where)
		cmd, args = args[0], args[1:]
	}
	known, ok := d.flags[cmd]
	require.True(t, ok, "%s: unknown command %s", d.where, cmd)
	var name string
	for i, a := range args {
		if f, ok := strings.CutPrefix(a, "--"); ok {
			assert.True(t, known[f], "%s: %s takes no flag --%s", d.where, cmd, f)
			if i+1 < len(args) {
				switch f {
				case "temporal-namespace", "namespace":
					assert.Equal(t, "garo", args[i+1], "%s: every process in Garo's namespace", d.where)
				case "name":
					name = args[i+1]
				}
			}
		}
		d.path(a)
	}
	if cmd == "agent" {
		d.sawAgent = true
		assert.Equal(t, "agent-"+name+".pem", filepath.Base(certPath(args, "--temporal-tls-cert")),
			"%s: agent %s presents its own certificate (common name agent:%s)", d.where, name, name)
	}
}

// path checks a certificate path: one that garo dev certs writes.
func (d *deployChecks) path(v string) {
	if strings.HasSuffix(v, ".pem") {
		assert.True(d.t, d.certs[filepath.Base(v)], "%s: garo dev certs writes no %s", d.where, filepath.Base(v))
	}
}

// env checks variables given to deploy/temporal's server and scripts.
func (d *deployChecks) env(k, v string) {
	if strings.HasPrefix(k, "GARO_PG_") || strings.HasPrefix(k, "GARO_TEMPORAL_") || k == "TEMPORAL_SQL" {
		assert.True(d.t, d.envRead[k], "%s: deploy/temporal reads no %s", d.where, k)
	}
	d.path(v)
}

func certPath(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestComposeAndSystemdMatchTheTestedConfiguration: deploy/compose and
// deploy/systemd use only flags garo and garo-temporal take, variables
// deploy/temporal reads, certificates garo dev certs writes (an agent its
// own), and Garo's one namespace.
func TestComposeAndSystemdMatchTheTestedConfiguration(t *testing.T) {
	t.Parallel()
	d := newDeployChecks(t)
	b, err := os.ReadFile("../deploy/compose/compose.yaml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Image       string
			Command     []string
			Entrypoint  []string
			Environment map[string]string
		}
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))
	require.Contains(t, compose.Services, "temporal")
	require.Contains(t, compose.Services, "server")
	for name, s := range compose.Services {
		d.where = "compose service " + name
		switch {
		case s.Image == "garo":
			d.command("garo", s.Command)
		case s.Image == "garo-temporal" && len(s.Entrypoint) == 0:
			d.command("garo-temporal", s.Command)
		}
		for k, v := range s.Environment {
			d.env(k, v)
		}
	}
	assert.True(t, d.sawAgent, "compose runs an agent")

	units, err := filepath.Glob("../deploy/systemd/*.service")
	require.NoError(t, err)
	require.Len(t, units, 3)
	d.sawAgent = false
	for _, u := range units {
		b, err := os.ReadFile(u)
		require.NoError(t, err)
		d.where = filepath.Base(u)
		text := strings.ReplaceAll(strings.ReplaceAll(string(b), "\\\n", " "), "%i", "lab-1")
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				f := strings.Fields(v)
				d.command(f[0], f[1:])
			}
			if v, ok := strings.CutPrefix(line, "Environment="); ok {
				k, val, _ := strings.Cut(v, "=")
				d.env(k, val)
			}
		}
	}
	assert.True(t, d.sawAgent, "a unit runs an agent")
}
