package tests

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/tests/fakeec2"
)

// TestAnEC2PoolServesJobsOnSpotThenOnDemand: an agent with the ec2
// provider, its real AWS SDK client pointed at a fake EC2 that starts a
// simulated runner from each instance's user data, serves 20 jobs. Spot
// has room for two instances at a time and the first instance type none on
// demand: runners land on spot, then on the second type on demand. Every
// job completes, and once the pool has drained no instance is left.
func TestAnEC2PoolServesJobsOnSpotThenOnDemand(t *testing.T) {
	t.Parallel()
	const accessKey = "AKIAE2EGARO000000000"
	fake := fakeec2.New(fakeec2.Options{AccessKeyID: accessKey, RunnerCommand: []string{githubsimBin, "runner"}})
	t.Cleanup(fake.Close)
	fake.Fail(func(action string, p url.Values) string {
		if action != "RunInstances" {
			return ""
		}
		if p.Get("InstanceMarketOptions.MarketType") == "spot" {
			spot := 0
			for _, in := range fake.Live() {
				if in.Market == "spot" {
					spot++
				}
			}
			if spot >= 2 {
				return "MaxSpotInstanceCountExceeded"
			}
			return ""
		}
		if p.Get("InstanceType") == "c7g.large" {
			return "InsufficientInstanceCapacity"
		}
		return ""
	})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)

	e := newPoolEnvWith(t, &poolEnv{t: t, ns: "e2e-ec2", agent: "ec2-1", addr: temporalAddr,
		agentArgs: []string{"--ec2-region", "eu-west-1,eu-central-1", "--ec2-endpoint", srv.URL},
		agentEnv: []string{"AWS_ACCESS_KEY_ID=" + accessKey, "AWS_SECRET_ACCESS_KEY=fake-secret",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}})
	const repo = "e2e/ec2"
	provider := `"provider":{"kind":"ec2","region":"eu-west-1","ami":"ami-0123456789abcdef0",
		"instanceTypes":"c7g.large m7g.large","subnets":"subnet-0aaaaaaaaaaaaaaa1 subnet-0aaaaaaaaaaaaaaa2",
		"spot":"true","tag.team":"ci"}`
	code, b := e.do("PUT", "/api/v1/repositories/"+repo, `{"agent":"ec2-1","maxRunners":4,"idleGracePeriod":"3s",
		"bootstrapTimeout":"1m",`+provider+`}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	code, b = e.do("PUT", "/api/v1/repositories/e2e/ec2-bad", `{"agent":"ec2-1","provider":{"kind":"ec2","region":"us-east-1","ami":"ami-0123456789abcdef0"}}`)
	assert.Equal(t, http.StatusUnprocessableEntity, code, "a region the agent does not launch in: %s", b)

	// An image EC2 does not have: the pool shows degraded with EC2's
	// message, and nothing is retried in a loop.
	code, b = e.do("PUT", "/api/v1/repositories/e2e/ec2-refused", `{"agent":"ec2-1","minIdle":1,"maxRunners":1,
		"provider":{"kind":"ec2","ami":"ami-bad0000000000000","instanceTypes":"m7g.large"}}`)
	require.Equal(t, http.StatusOK, code, "%s", b)
	eventually(t, time.Minute, "the refused pool degraded", func() bool {
		v := e.pool("e2e/ec2-refused")
		return v.Degraded && strings.Contains(v.LastError, "InvalidAMIID.NotFound")
	})
	code, b = e.do("DELETE", "/api/v1/repositories/e2e/ec2-refused", "")
	require.Equal(t, http.StatusAccepted, code, "%s", b)

	const jobs = 20
	e.serveAndDrain(repo, jobs)
	eventually(t, 30*time.Second, "no instance left", func() bool { return len(fake.Live()) == 0 })
	assert.Empty(t, e.sim.Runners(repo), "no runner left on GitHub")

	var spot, onDemand int
	for _, in := range fake.Instances() {
		switch in.Market {
		case "spot":
			spot++
		default:
			onDemand++
			assert.Equal(t, "m7g.large", in.Type, "on demand, the first type had no capacity")
		}
		assert.Equal(t, "ec2-1", in.Tags["garo:agent"])
		assert.Equal(t, repo, in.Tags["garo:repository"])
		assert.NotEmpty(t, in.Tags["garo:runner"])
		assert.Equal(t, "ci", in.Tags["team"])
		assert.NotEmpty(t, in.Env["ACTIONS_RUNNER_INPUT_JITCONFIG"], "the JIT config came in the user data")
	}
	assert.GreaterOrEqual(t, spot+onDemand, jobs, "one instance per job")
	assert.Positive(t, spot, "runners on spot")
	assert.Positive(t, onDemand, "and on demand when spot was full")
	t.Logf("%d instances on spot, %d on demand; EC2 requests: %v", spot, onDemand, fake.Requests())
}
