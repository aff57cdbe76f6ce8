package ec2

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/activities/provider"
	"github.com/garo-run/garo/activities/provider/providertest"
	"github.com/garo-run/garo/tests/fakeec2"
)

const accessKey = "AKIAFAKEGARO0000TEST"

// newFake serves a fake EC2 to the real SDK client, signed with static
// credentials; retries back off briefly so that throttling tests are fast.
func newFake(t *testing.T, opts fakeec2.Options) (*fakeec2.EC2, func(ctx context.Context, region string) (API, error)) {
	t.Helper()
	opts.AccessKeyID = accessKey
	f := fakeec2.New(opts)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(f.Close)
	client := func(_ context.Context, region string) (API, error) {
		return ec2.NewFromConfig(aws.Config{Region: region,
			Credentials: credentials.NewStaticCredentialsProvider(accessKey, "fake-secret", ""),
			Retryer: func() aws.Retryer {
				return retry.AddWithMaxBackoffDelay(retry.NewStandard(), 20*time.Millisecond)
			}}, func(o *ec2.Options) { o.BaseEndpoint = aws.String(srv.URL) }), nil
	}
	return f, client
}

func newProvider(t *testing.T, client func(context.Context, string) (API, error)) *Provider {
	t.Helper()
	p, err := New(context.Background(), Config{Regions: []string{"eu-west-1"}, Client: client})
	require.NoError(t, err)
	return p
}

var baseOptions = map[string]string{"kind": "ec2", "ami": "ami-0123456789abcdef0", "instanceTypes": "m7g.large"}

func request(name string, tags map[string]string, opts map[string]string) provider.CreateRequest {
	o := map[string]string{}
	for k, v := range baseOptions {
		o[k] = v
	}
	for k, v := range opts {
		o[k] = v
	}
	return provider.CreateRequest{Name: name, Tags: tags, Options: o,
		Env: map[string]string{"ACTIONS_RUNNER_INPUT_JITCONFIG": "jit-" + name}}
}

func TestConformance(t *testing.T) {
	var client func(context.Context, string) (API, error)
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider {
			_, client = newFake(t, fakeec2.Options{})
			return newProvider(t, client)
		},
		Reopen:  func(t *testing.T, _ provider.Provider) provider.Provider { return newProvider(t, client) },
		Request: func(name string, tags map[string]string) provider.CreateRequest { return request(name, tags, nil) },
	})
}

func TestALaunchCarriesThePoolsOptionsTagsAndNoSecretOutsideTheUserData(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{})
	p := newProvider(t, client)
	req := request("garo-abc-1", map[string]string{"garo-agent": "lab-1", "garo-repository": "octo/app"}, map[string]string{
		"subnets": "subnet-0aaaaaaaaaaaaaaa1 subnet-0aaaaaaaaaaaaaaa2", "securityGroups": "sg-0123456789abcdef0",
		"instanceProfile": "garo-runner", "keyName": "ops", "rootVolumeSize": "64", "tag.team": "infra"})
	req.Env["ACTIONS_RUNNER_INPUT_LABELS"] = "self-hosted,it's"
	in, err := p.Create(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "garo-abc-1", in.Name)
	assert.Equal(t, provider.StateRunning, in.State)
	assert.Equal(t, "lab-1", in.Tags["garo-agent"], "Garo's tags come back in Garo's form")

	live := f.Live()
	require.Len(t, live, 1)
	got := live[0]
	assert.Equal(t, in.ID, got.ID)
	assert.Equal(t, map[string]string{"garo:runner": "garo-abc-1", "garo:agent": "lab-1", "garo:repository": "octo/app",
		"Name": "garo-abc-1", "team": "infra"}, got.Tags)
	assert.Equal(t, "m7g.large", got.Type)
	assert.Contains(t, []string{"subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"}, got.Subnet)
	assert.Equal(t, []string{"sg-0123456789abcdef0"}, got.SecurityGroups)
	assert.Equal(t, "garo-runner", got.Profile)
	assert.Equal(t, 64, got.RootVolumeSize)
	assert.Equal(t, "required", got.MetadataTokens, "IMDSv2 only")
	assert.Equal(t, 1, got.HopLimit, "no container reaches the metadata service")
	assert.Equal(t, "terminate", got.ShutdownBehavior)
	assert.LessOrEqual(t, len(got.ClientToken), 64)
	assert.True(t, strings.HasPrefix(got.ClientToken, "garo-abc-1-"), got.ClientToken)
	assert.Equal(t, map[string]string{"ACTIONS_RUNNER_INPUT_JITCONFIG": "jit-garo-abc-1",
		"ACTIONS_RUNNER_INPUT_LABELS": "self-hosted,it's"}, got.Env, "the runner's variables, quoted, in the user data")
	assert.Contains(t, got.UserData, "--uid-owner 0", "the metadata service is closed to job code")
	for k, v := range got.Tags {
		assert.NotContains(t, k+v, "jit-", "no secret in a tag")
	}
}

func TestNoCapacityMovesOnToTheNextTypeSubnetThenOnDemand(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{})
	f.Fail(func(action string, p url.Values) string {
		if action != "RunInstances" {
			return ""
		}
		switch {
		case p.Get("InstanceMarketOptions.MarketType") == "spot" && p.Get("InstanceType") == "c7g.large":
			return "SpotMaxPriceTooLow"
		case p.Get("InstanceMarketOptions.MarketType") == "spot":
			return "MaxSpotInstanceCountExceeded"
		case p.Get("InstanceType") == "c7g.large":
			return "InsufficientInstanceCapacity"
		case p.Get("SubnetId") == "subnet-0aaaaaaaaaaaaaaa1":
			return "InsufficientInstanceCapacity"
		}
		return ""
	})
	p := newProvider(t, client)
	in, err := p.Create(context.Background(), request("garo-cap-1", nil, map[string]string{"spot": "true",
		"instanceTypes": "c7g.large m7g.large", "subnets": "subnet-0aaaaaaaaaaaaaaa1 subnet-0aaaaaaaaaaaaaaa2"}))
	require.NoError(t, err)
	live := f.Live()
	require.Len(t, live, 1)
	assert.Equal(t, in.ID, live[0].ID)
	assert.Equal(t, "on-demand", live[0].Market, "spot had no capacity anywhere")
	assert.Equal(t, "m7g.large", live[0].Type)
	assert.Equal(t, "subnet-0aaaaaaaaaaaaaaa2", live[0].Subnet)
	req := f.Requests()
	assert.Equal(t, 2, req["RunInstances SpotMaxPriceTooLow"], "each subnet of the first type on spot")
	assert.Equal(t, 2, req["RunInstances MaxSpotInstanceCountExceeded"])
	assert.Equal(t, 1, req["RunInstances"])

	f.Fail(func(action string, _ url.Values) string {
		if action == "RunInstances" {
			return "InsufficientInstanceCapacity"
		}
		return ""
	})
	_, err = p.Create(context.Background(), request("garo-cap-2", nil, nil))
	require.Error(t, err)
	assert.False(t, errors.Is(err, provider.ErrRefused), "no capacity is worth retrying later")
	assert.Contains(t, err.Error(), "no capacity in any choice")
}

func TestThrottlingIsRetriedWithBackoff(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{})
	var throttled atomic.Int32
	f.Fail(func(action string, _ url.Values) string {
		if action == "RunInstances" && throttled.Add(1) <= 2 {
			return "RequestLimitExceeded"
		}
		return ""
	})
	p := newProvider(t, client)
	_, err := p.Create(context.Background(), request("garo-thr-1", nil, nil))
	require.NoError(t, err)
	assert.Equal(t, 2, f.Requests()["RunInstances RequestLimitExceeded"])
	assert.Len(t, f.Live(), 1)
}

func TestARefusalIsPermanent(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{})
	p := newProvider(t, client)
	_, err := p.Create(context.Background(), request("garo-bad-1", nil, map[string]string{"ami": "ami-bad0000000000000"}))
	require.ErrorIs(t, err, provider.ErrRefused)
	assert.Contains(t, err.Error(), "InvalidAMIID.NotFound")

	f.Fail(func(action string, _ url.Values) string {
		if action == "RunInstances" {
			return "UnauthorizedOperation"
		}
		return ""
	})
	_, err = p.Create(context.Background(), request("garo-bad-2", nil, nil))
	require.ErrorIs(t, err, provider.ErrRefused)
	assert.Contains(t, err.Error(), "UnauthorizedOperation")

	_, err = p.Create(context.Background(), request("garo-bad-3", nil, map[string]string{"region": "us-east-1"}))
	require.ErrorIs(t, err, provider.ErrRefused, "a region the agent does not launch in")
	_, err = p.Create(context.Background(), request("garo-bad-4", nil, map[string]string{"tag.garo:agent": "forged"}))
	require.ErrorIs(t, err, provider.ErrRefused, "Garo's own tags are not a pool's to set")
	assert.Empty(t, f.Live())
}

// TestARetriedLaunchReusesItsClientToken: an agent that crashed after
// EC2 launched its instance, but before it knew, launches again with the
// same ClientToken while EC2 does not list the instance yet, and gets the
// same instance back: never a second one.
func TestARetriedLaunchReusesItsClientToken(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{DescribeLag: time.Hour})
	first, err := newProvider(t, client).Create(context.Background(), request("garo-retry-1", nil, nil))
	require.NoError(t, err)
	again, err := newProvider(t, client).Create(context.Background(), request("garo-retry-1", nil, nil))
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Len(t, f.Instances(), 1)
	assert.Equal(t, 1, f.Requests()["RunInstances idempotent"])
}

// TestAfterATerminationTheNameLaunchesAnew: a runner replaced under the
// same name (its first instance crashed and was deleted) gets a new
// instance, not the terminated one its first ClientToken stands for.
func TestAfterATerminationTheNameLaunchesAnew(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{})
	p := newProvider(t, client)
	first, err := p.Create(context.Background(), request("garo-again-1", nil, nil))
	require.NoError(t, err)
	require.NoError(t, p.Delete(context.Background(), "garo-again-1"))
	second, err := p.Create(context.Background(), request("garo-again-1", nil, nil))
	require.NoError(t, err)
	assert.NotEqual(t, first.ID, second.ID)
	require.Len(t, f.Live(), 1)
	assert.Equal(t, second.ID, f.Live()[0].ID)
}

// TestAnInstanceThatShutItselfDownHasExitedCleanly: the runner ended and
// the user data shut the instance down: Get says exited with 0, and
// Delete finds nothing left to terminate.
func TestAnInstanceThatShutItselfDownHasExitedCleanly(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{RunnerCommand: []string{"true"}})
	p := newProvider(t, client)
	_, err := p.Create(context.Background(), request("garo-done-1", nil, nil))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(f.Live()) == 0 }, 10*time.Second, 20*time.Millisecond)
	in, err := p.Get(context.Background(), "garo-done-1")
	require.NoError(t, err)
	assert.Equal(t, provider.StateExited, in.State)
	assert.Equal(t, 0, in.ExitCode)
	assert.ErrorIs(t, p.Delete(context.Background(), "garo-done-1"), provider.ErrNotFound)
}

// TestWatchesShareOneListing: the runners' watches look at their
// instances every few seconds; they share one DescribeInstances per
// listing, not one each.
func TestWatchesShareOneListing(t *testing.T) {
	f, client := newFake(t, fakeec2.Options{})
	p, err := New(context.Background(), Config{Regions: []string{"eu-west-1"}, Client: client, Agent: "lab-1", ListEvery: time.Hour})
	require.NoError(t, err)
	for i := range 5 {
		_, err := p.Create(context.Background(), request(fmt.Sprintf("garo-w-%d", i), map[string]string{"garo-agent": "lab-1"}, nil))
		require.NoError(t, err)
	}
	before := f.Requests()["DescribeInstances"]
	for range 10 {
		for i := range 5 {
			in, err := p.Get(context.Background(), fmt.Sprintf("garo-w-%d", i))
			require.NoError(t, err)
			assert.Equal(t, provider.StateRunning, in.State)
		}
	}
	assert.Equal(t, 1, f.Requests()["DescribeInstances"]-before, "50 looks, one listing")

	require.NoError(t, p.Delete(context.Background(), "garo-w-0"))
	_, err = p.Get(context.Background(), "garo-w-0")
	assert.ErrorIs(t, err, provider.ErrNotFound, "a delete is seen at once")
}
