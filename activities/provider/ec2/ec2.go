// Package ec2 is the provider that runs each runner on its own EC2
// instance, through aws-sdk-go-v2. Instances carry the tags garo:runner,
// garo:repository and garo:agent, and are found by them: nothing is kept on
// the agent. A launch is idempotent by a ClientToken derived from the
// runner's name; spot or capacity shortages move on to the next instance
// type or subnet, then to on-demand. The runner's JIT config reaches the
// instance in its user data, which only root may read back once the
// instance has booted (see docs/providers.md).
package ec2

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/garo-run/garo/activities/provider"
)

// Kind is this provider's name in pool configurations.
const Kind = "ec2"

// API is the part of the EC2 client the provider calls.
type API interface {
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// Config configures the provider.
type Config struct {
	// Regions the agent launches in: a pool's region option must be one of
	// them, and the first is the region of a pool that names none. Empty:
	// the region of the standard AWS configuration.
	Regions []string
	// Endpoint, when set, replaces EC2's endpoint (a VPC endpoint, or a
	// fake in tests).
	Endpoint string
	// Client returns the client of a region; nil: aws-sdk-go-v2's, with
	// credentials from the standard chain (environment, shared config,
	// web identity, IMDS), loaded once per region.
	Client func(ctx context.Context, region string) (API, error)
	// Agent, when set, narrows the listing that answers Get to the
	// agent's own instances (tag garo:agent).
	Agent string
	// ListEvery is how old that listing may be (default 5s): the watches
	// of all the agent's runners share one DescribeInstances per region
	// per ListEvery, rather than one each, which EC2 would throttle.
	ListEvery time.Duration
	Logger    *slog.Logger
}

// Provider runs instances on EC2.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	mu      sync.Mutex
	clients map[string]API
	// creating serialises creates of one name in this agent; across
	// agents the ClientToken makes a second launch return the first.
	creating provider.NameLocks
	// created remembers what this provider launched, by name, for EC2's
	// eventual consistency: a describe just after a launch may miss it.
	created map[string]provider.Instance
	// regionOf is the region of each runner this provider launched, so
	// that a look at one runner asks one region, not all.
	regionOf map[string]string
	// listMu serialises refreshes of listing, the newest live instance of
	// each name, taken at listedAt (guarded by mu).
	listMu   sync.Mutex
	listing  map[string]types.Instance
	listedAt time.Time
}

// New returns a provider over cfg.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = defaultClient(cfg.Endpoint)
	}
	if cfg.ListEvery == 0 {
		cfg.ListEvery = 5 * time.Second
	}
	if len(cfg.Regions) == 0 {
		c, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("ec2 provider: load AWS configuration: %w", err)
		}
		if c.Region == "" {
			return nil, errors.New("ec2 provider: no region: give --ec2-region or set AWS_REGION")
		}
		cfg.Regions = []string{c.Region}
	}
	for _, r := range cfg.Regions {
		if !regionPattern.MatchString(r) {
			return nil, fmt.Errorf("ec2 provider: invalid region %q", r)
		}
	}
	p := &Provider{cfg: cfg, log: cfg.Logger, clients: map[string]API{},
		created: map[string]provider.Instance{}, regionOf: map[string]string{}}
	// Load every region's configuration now, so that the agent may drop
	// the credentials from its environment once New returns.
	for _, r := range cfg.Regions {
		if _, err := p.client(ctx, r); err != nil {
			return nil, fmt.Errorf("ec2 provider: %w", err)
		}
	}
	return p, nil
}

func defaultClient(endpoint string) func(ctx context.Context, region string) (API, error) {
	return func(ctx context.Context, region string) (API, error) {
		c, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
		if err != nil {
			return nil, fmt.Errorf("load AWS configuration for %s: %w", region, err)
		}
		return ec2.NewFromConfig(c, func(o *ec2.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
		}), nil
	}
}

// Kind returns "ec2".
func (p *Provider) Kind() string { return Kind }

var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

// Options lists what a pool may set; region is one of the agent's.
func (p *Provider) Options() []provider.Option {
	quoted := make([]string, len(p.cfg.Regions))
	for i, r := range p.cfg.Regions {
		quoted[i] = regexp.QuoteMeta(r)
	}
	return []provider.Option{
		{Name: "region", Pattern: strings.Join(quoted, "|"), Usage: "one of the agent's regions (--ec2-region); default " + p.cfg.Regions[0]},
		{Name: "ami", Pattern: `ami-[0-9a-f]{8,17}`, Usage: "the image; or a launchTemplate"},
		{Name: "launchTemplate", Pattern: `lt-[0-9a-f]{8,17}|[A-Za-z0-9()./_-]{3,128}`, Usage: "a launch template, by id (lt-...) or name"},
		{Name: "launchTemplateVersion", Pattern: `\$Latest|\$Default|[0-9]{1,9}`, Usage: "its version (default $Default)"},
		{Name: "instanceTypes", Pattern: `[a-z0-9-]+\.[a-z0-9-]+( [a-z0-9-]+\.[a-z0-9-]+){0,19}`, Usage: "instance types, space-separated, tried in order"},
		{Name: "subnets", Pattern: `subnet-[0-9a-f]{8,17}( subnet-[0-9a-f]{8,17}){0,19}`, Usage: "subnets, space-separated: runners are spread across them"},
		{Name: "securityGroups", Pattern: `sg-[0-9a-f]{8,17}( sg-[0-9a-f]{8,17}){0,9}`, Usage: "security group ids, space-separated"},
		{Name: "instanceProfile", Pattern: `[A-Za-z0-9+=,.@_-]{1,128}|arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/[A-Za-z0-9+=,.@_/-]{1,256}`, Usage: "IAM instance profile: name or ARN"},
		{Name: "keyName", Pattern: `[A-Za-z0-9 ._:/@+=-]{1,255}`, Usage: "an SSH key pair's name"},
		{Name: "rootVolumeSize", Pattern: `[1-9][0-9]{0,4}`, Usage: "root volume size in GiB"},
		{Name: "rootDeviceName", Pattern: `/dev/[a-z0-9]{2,16}`, Usage: "the image's root device (default /dev/xvda)"},
		{Name: "spot", Pattern: `true|false`, Usage: "spot instances, with on-demand when spot has no capacity"},
		{Name: "runnerDir", Pattern: `/[A-Za-z0-9._/-]{1,255}`, Usage: "where the image has the actions runner (default /opt/actions-runner)"},
		{Name: "runnerUser", Pattern: `[a-z_][a-z0-9_-]{0,31}`, Usage: "the user the runner runs as (default runner)"},
		{Name: "tag.", KeyPattern: `[A-Za-z0-9 +=._:/@-]{1,127}`, Pattern: `[A-Za-z0-9 +=._:/@-]{0,255}`, Usage: "tag.KEY=VALUE: an extra tag of the instances"},
	}
}

// spec is a pool's options, read.
type spec struct {
	region, ami, template, templateVersion string
	types, subnets, groups                 []string
	profile, keyName, rootDevice           string
	rootSize                               int32
	spot                                   bool
	runnerDir, runnerUser                  string
	tags                                   map[string]string
}

func (p *Provider) spec(opts map[string]string) (spec, error) {
	if err := provider.CheckOptions(p.Options(), opts); err != nil {
		return spec{}, fmt.Errorf("%w: %w", provider.ErrRefused, err)
	}
	s := spec{region: opts["region"], ami: opts["ami"], template: opts["launchTemplate"],
		templateVersion: opts["launchTemplateVersion"], types: strings.Fields(opts["instanceTypes"]),
		subnets: strings.Fields(opts["subnets"]), groups: strings.Fields(opts["securityGroups"]),
		profile: opts["instanceProfile"], keyName: opts["keyName"], rootDevice: opts["rootDeviceName"],
		spot: opts["spot"] == "true", runnerDir: opts["runnerDir"], runnerUser: opts["runnerUser"], tags: map[string]string{}}
	if s.region == "" {
		s.region = p.cfg.Regions[0]
	}
	if (s.ami == "") == (s.template == "") {
		return spec{}, fmt.Errorf("%w: give an ami or a launchTemplate, not both", provider.ErrRefused)
	}
	if s.template == "" && len(s.types) == 0 {
		return spec{}, fmt.Errorf("%w: give instanceTypes (or a launchTemplate that sets one)", provider.ErrRefused)
	}
	if s.rootDevice == "" {
		s.rootDevice = "/dev/xvda"
	}
	if s.runnerDir == "" {
		s.runnerDir = "/opt/actions-runner"
	}
	if s.runnerUser == "" {
		s.runnerUser = "runner"
	}
	if v := opts["rootVolumeSize"]; v != "" {
		n, _ := strconv.Atoi(v)
		s.rootSize = int32(n)
	}
	for k, v := range opts {
		if key, ok := strings.CutPrefix(k, "tag."); ok {
			if strings.HasPrefix(key, "garo:") || strings.HasPrefix(key, "aws:") {
				return spec{}, fmt.Errorf("%w: tag %q: the prefixes garo: and aws: are reserved", provider.ErrRefused, key)
			}
			s.tags[key] = v
		}
	}
	return s, nil
}

func (p *Provider) client(ctx context.Context, region string) (API, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[region]; ok {
		return c, nil
	}
	c, err := p.cfg.Client(ctx, region)
	if err != nil {
		return nil, err
	}
	p.clients[region] = c
	return c, nil
}

// Tag keys: Garo's tags (garo-agent, garo-repository) become garo:agent
// and garo:repository on EC2, and the runner's name is garo:runner.
const runnerTag = "garo:runner"

func ec2Key(k string) string {
	if rest, ok := strings.CutPrefix(k, "garo-"); ok {
		return "garo:" + rest
	}
	return k
}

func garoKey(k string) string {
	if rest, ok := strings.CutPrefix(k, "garo:"); ok {
		return "garo-" + rest
	}
	return k
}

// ClientToken is at most 64 characters: the runner's name and a hash of
// the choice (generation, type, subnet, market), so that a retried launch
// of the same choice returns the instance of the first, while another
// choice is a new launch.
func clientToken(name, choice string) string {
	h := sha256.Sum256([]byte(name + "\x00" + choice))
	suffix := hex.EncodeToString(h[:4])
	if len(name)+1+len(suffix) <= 64 {
		return name + "-" + suffix
	}
	return hex.EncodeToString(h[:32])
}

// Capacity errors: the next type, subnet or market may have room.
var capacityCodes = []string{"InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded",
	"InsufficientCapacityOnHost", "InsufficientHostCapacity", "Unsupported"}

// Refused: retrying cannot help until the configuration or permissions
// change.
var refusedCodes = []string{"UnauthorizedOperation", "AuthFailure", "InvalidAMIID.NotFound", "InvalidAMIID.Malformed",
	"InvalidAMIID.Unavailable", "InvalidSubnetID.NotFound", "InvalidGroup.NotFound", "InvalidParameterValue",
	"InvalidParameterCombination", "InvalidKeyPair.NotFound", "InvalidLaunchTemplateId.NotFound",
	"InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.VersionNotFound", "MissingParameter",
	"OptInRequired", "Blocked", "PendingVerification", "VcpuLimitExceeded", "InstanceLimitExceeded"}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Create launches the runner's instance: for each market (spot first when
// asked), each instance type and each subnet (starting from one the
// name picks, to spread runners), until one has capacity.
func (p *Provider) Create(ctx context.Context, req provider.CreateRequest) (provider.Instance, error) {
	s, err := p.spec(req.Options)
	if err != nil {
		return provider.Instance{}, err
	}
	defer p.creating.Lock(req.Name)()
	p.mu.Lock()
	launched, ok := p.created[req.Name]
	p.mu.Unlock()
	if ok {
		return launched, fmt.Errorf("%w: %s", provider.ErrDuplicate, req.Name)
	}
	earlier, err := p.describe(ctx, []string{s.region}, []types.Filter{tagFilter(runnerTag, req.Name)})
	if err != nil {
		return provider.Instance{}, err
	}
	for _, in := range earlier {
		if inst := instance(in); inst.State == provider.StateRunning {
			return inst, fmt.Errorf("%w: %s", provider.ErrDuplicate, req.Name)
		}
	}
	// The ClientToken counts the instances the name had: a retried launch
	// (whose instance EC2 may not list yet) reuses the token and gets that
	// instance back, while a launch after one was terminated gets a new
	// one, not the terminated instance.
	generation := strconv.Itoa(len(earlier))
	c, err := p.client(ctx, s.region)
	if err != nil {
		return provider.Instance{}, err
	}
	userData, err := renderUserData(req, s)
	if err != nil {
		return provider.Instance{}, err
	}
	markets := []bool{false}
	if s.spot {
		markets = []bool{true, false}
	}
	typesToTry := s.types
	if len(typesToTry) == 0 {
		typesToTry = []string{""} // the launch template's
	}
	subnets := spread(s.subnets, req.Name)
	var tried []string
	for _, spot := range markets {
		for _, typ := range typesToTry {
			for _, subnet := range subnets {
				in := p.runInput(req, s, typ, subnet, spot, generation, userData)
				out, err := c.RunInstances(ctx, in)
				choice := fmt.Sprintf("%s/%s/%s", orDefault(typ, "template type"), orDefault(subnet, "default subnet"), market(spot))
				if err != nil {
					code := apiCode(err)
					switch {
					case slices.Contains(capacityCodes, code):
						p.log.Info("No EC2 capacity; trying the next choice", "runner", req.Name, "choice", choice, "code", code)
						tried = append(tried, choice+": "+code)
						continue
					case slices.Contains(refusedCodes, code):
						return provider.Instance{}, fmt.Errorf("%w: EC2 refused to launch %s (%s): %w", provider.ErrRefused, req.Name, choice, err)
					}
					return provider.Instance{}, fmt.Errorf("launch %s (%s): %w", req.Name, choice, err)
				}
				if len(out.Instances) == 0 {
					return provider.Instance{}, fmt.Errorf("launch %s (%s): EC2 answered no instance", req.Name, choice)
				}
				inst := instance(out.Instances[0])
				p.mu.Lock()
				p.created[req.Name], p.regionOf[req.Name] = inst, s.region
				p.mu.Unlock()
				p.forget()
				p.log.Info("EC2 instance launched", "runner", req.Name, "instance", inst.ID, "region", s.region, "choice", choice)
				return inst, nil
			}
		}
	}
	return provider.Instance{}, fmt.Errorf("launch %s: no capacity in any choice: %s", req.Name, strings.Join(tried, "; "))
}

func market(spot bool) string {
	if spot {
		return "spot"
	}
	return "on-demand"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// spread orders the subnets starting at one the name picks, so that
// runners are spread across them and each runner's order is stable.
func spread(subnets []string, name string) []string {
	if len(subnets) == 0 {
		return []string{""}
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	i := int(h.Sum32() % uint32(len(subnets)))
	return append(slices.Clone(subnets[i:]), subnets[:i]...)
}

func (p *Provider) runInput(req provider.CreateRequest, s spec, typ, subnet string, spot bool, generation, userData string) *ec2.RunInstancesInput {
	tags := []types.Tag{{Key: aws.String(runnerTag), Value: aws.String(req.Name)}, {Key: aws.String("Name"), Value: aws.String(req.Name)}}
	for _, k := range slices.Sorted(maps.Keys(req.Tags)) {
		tags = append(tags, types.Tag{Key: aws.String(ec2Key(k)), Value: aws.String(req.Tags[k])})
	}
	for _, k := range slices.Sorted(maps.Keys(s.tags)) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(s.tags[k])})
	}
	in := &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		ClientToken:                       aws.String(clientToken(req.Name, generation+"/"+typ+"/"+subnet+"/"+market(spot))),
		UserData:                          aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorTerminate,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags}},
		// IMDSv2 only, one hop: a container on the instance cannot reach
		// the metadata service, so neither the user data.
		MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: types.HttpTokensStateRequired,
			HttpPutResponseHopLimit: aws.Int32(1), HttpEndpoint: types.InstanceMetadataEndpointStateEnabled},
	}
	if s.ami != "" {
		in.ImageId = aws.String(s.ami)
	} else {
		in.LaunchTemplate = &types.LaunchTemplateSpecification{Version: aws.String(orDefault(s.templateVersion, "$Default"))}
		if strings.HasPrefix(s.template, "lt-") {
			in.LaunchTemplate.LaunchTemplateId = aws.String(s.template)
		} else {
			in.LaunchTemplate.LaunchTemplateName = aws.String(s.template)
		}
	}
	if typ != "" {
		in.InstanceType = types.InstanceType(typ)
	}
	if subnet != "" {
		in.SubnetId = aws.String(subnet)
	}
	if len(s.groups) > 0 {
		in.SecurityGroupIds = s.groups
	}
	if s.profile != "" {
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{}
		if strings.HasPrefix(s.profile, "arn:") {
			in.IamInstanceProfile.Arn = aws.String(s.profile)
		} else {
			in.IamInstanceProfile.Name = aws.String(s.profile)
		}
	}
	if s.keyName != "" {
		in.KeyName = aws.String(s.keyName)
	}
	if s.rootSize > 0 {
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String(s.rootDevice),
			Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(s.rootSize), VolumeType: types.VolumeTypeGp3, DeleteOnTermination: aws.Bool(true)}}}
	}
	if spot {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{SpotInstanceType: types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}}
	}
	return in
}

// userDataTemplate starts the runner at first boot, as root. Before
// anything else it closes the metadata service to every user but root, so
// that job code (which runs as the runner's user) cannot read the JIT
// config back from the user data; the runner gets it in its environment.
// When the runner ends, the instance shuts down, which terminates it.
var userDataTemplate = template.Must(template.New("user-data").Parse(`#!/bin/bash
# Garo runner {{.Name}}: written by the garo agent, run once by cloud-init as root.
set -u
iptables -I OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT || { echo "cannot close IMDS to job code" >&2; shutdown -h now; exit 1; }
{{range .Env}}export {{.}}
{{end}}cd {{.Dir}} || { shutdown -h now; exit 1; }
if [ -z "${ACTIONS_RUNNER_INPUT_JITCONFIG:-}" ]; then
  sudo -E -H -u {{.User}} ./config.sh --unattended --disableupdate || { shutdown -h now; exit 1; }
fi
sudo -E -H -u {{.User}} ./run.sh
shutdown -h now
`))

var envNamePattern = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func renderUserData(req provider.CreateRequest, s spec) (string, error) {
	var env []string
	for _, k := range slices.Sorted(maps.Keys(req.Env)) {
		if !envNamePattern.MatchString(k) {
			return "", fmt.Errorf("%w: runner variable %q", provider.ErrRefused, k)
		}
		env = append(env, k+"="+shellQuote(req.Env[k]))
	}
	var b strings.Builder
	err := userDataTemplate.Execute(&b, struct {
		Name, Dir, User string
		Env             []string
	}{req.Name, shellQuote(s.runnerDir), s.runnerUser, env})
	if err != nil {
		return "", fmt.Errorf("render user data: %w", err)
	}
	if b.Len() > 16*1024 {
		return "", fmt.Errorf("%w: user data of %d bytes exceeds EC2's 16 KiB", provider.ErrRefused, b.Len())
	}
	return b.String(), nil
}

// shellQuote quotes s for a POSIX shell: 'it'\”s'.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// instance maps an EC2 instance: pending and running are running; any
// other state has exited, cleanly (0) when the instance shut itself down,
// as it does when its runner ends, and not (1) when it was interrupted.
func instance(in types.Instance) provider.Instance {
	out := provider.Instance{ID: aws.ToString(in.InstanceId), Tags: map[string]string{}, State: provider.StateRunning}
	if in.LaunchTime != nil {
		out.CreatedAt = in.LaunchTime.UTC()
	}
	for _, t := range in.Tags {
		k := aws.ToString(t.Key)
		if k == runnerTag {
			out.Name = aws.ToString(t.Value)
			continue
		}
		if strings.HasPrefix(k, "garo:") || !strings.HasPrefix(k, "aws:") && k != "Name" {
			out.Tags[garoKey(k)] = aws.ToString(t.Value)
		}
	}
	if in.State != nil {
		switch in.State.Name {
		case types.InstanceStateNamePending, types.InstanceStateNameRunning:
		default:
			out.State, out.ExitCode = provider.StateExited, 1
			if in.StateReason != nil && aws.ToString(in.StateReason.Code) == "Client.InstanceInitiatedShutdown" {
				out.ExitCode = 0
			}
		}
	}
	return out
}

// deletedByUser: terminated through the API (Delete, or an operator): the
// instance is gone, not exited.
func deletedByUser(in types.Instance) bool {
	return in.State != nil && (in.State.Name == types.InstanceStateNameTerminated || in.State.Name == types.InstanceStateNameShuttingDown) &&
		in.StateReason != nil && aws.ToString(in.StateReason.Code) == "Client.UserInitiatedShutdown"
}

// describe returns the instances of every region that match the filters.
func (p *Provider) describe(ctx context.Context, regions []string, filters []types.Filter) ([]types.Instance, error) {
	var out []types.Instance
	for _, region := range regions {
		c, err := p.client(ctx, region)
		if err != nil {
			return nil, err
		}
		pages := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{Filters: filters})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe instances in %s: %w", region, err)
			}
			for _, r := range page.Reservations {
				out = append(out, r.Instances...)
			}
		}
	}
	return out, nil
}

func tagFilter(k, v string) types.Filter {
	return types.Filter{Name: aws.String("tag:" + k), Values: []string{v}}
}

// live returns the newest live instance called name from a listing of
// every live instance at most ListEvery old, taking a new one when it is
// older.
func (p *Provider) live(ctx context.Context, name string) (types.Instance, bool, error) {
	p.listMu.Lock()
	defer p.listMu.Unlock()
	p.mu.Lock()
	listing, fresh := p.listing, time.Since(p.listedAt) < p.cfg.ListEvery
	p.mu.Unlock()
	if !fresh {
		filters := []types.Filter{{Name: aws.String("tag-key"), Values: []string{runnerTag}},
			{Name: aws.String("instance-state-name"), Values: liveStates}}
		if p.cfg.Agent != "" {
			filters = append(filters, tagFilter("garo:agent", p.cfg.Agent))
		}
		taken := time.Now()
		list, err := p.describe(ctx, p.cfg.Regions, filters)
		if err != nil {
			return types.Instance{}, false, err
		}
		listing = map[string]types.Instance{}
		for _, in := range list {
			n := instance(in).Name
			if old, ok := listing[n]; !ok || aws.ToTime(in.LaunchTime).After(aws.ToTime(old.LaunchTime)) {
				listing[n] = in
			}
		}
		p.mu.Lock()
		p.listing, p.listedAt = listing, taken
		p.mu.Unlock()
	}
	in, ok := listing[name]
	return in, ok, nil
}

// regionsOf returns the region of the runner called name if this
// provider launched it, or else every region.
func (p *Provider) regionsOf(name string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.regionOf[name]; ok {
		return []string{r}
	}
	return p.cfg.Regions
}

// forget makes the next Get take a new listing: an instance was launched
// or terminated.
func (p *Provider) forget() {
	p.mu.Lock()
	p.listedAt = time.Time{}
	p.mu.Unlock()
}

// Get returns the newest instance of the runner; one terminated through
// the API is gone. A live one comes from the shared listing; otherwise one
// look at the name, in every state, tells an exit from nothing.
func (p *Provider) Get(ctx context.Context, name string) (provider.Instance, error) {
	if in, ok, err := p.live(ctx, name); err != nil {
		return provider.Instance{}, err
	} else if ok && !deletedByUser(in) {
		p.mu.Lock()
		delete(p.created, name) // listed now
		p.mu.Unlock()
		return instance(in), nil
	}
	list, err := p.describe(ctx, p.regionsOf(name), []types.Filter{tagFilter(runnerTag, name)})
	if err != nil {
		return provider.Instance{}, err
	}
	var best *types.Instance
	for i, in := range list {
		if deletedByUser(in) {
			continue
		}
		if best == nil || aws.ToTime(in.LaunchTime).After(aws.ToTime(best.LaunchTime)) {
			best = &list[i]
		}
	}
	if best == nil {
		p.mu.Lock()
		in, ok := p.created[name]
		p.mu.Unlock()
		if ok && len(list) == 0 {
			return in, nil // launched, not yet listed by EC2
		}
		return provider.Instance{}, fmt.Errorf("%w: %s", provider.ErrNotFound, name)
	}
	p.mu.Lock()
	delete(p.created, name) // listed now
	p.mu.Unlock()
	return instance(*best), nil
}

// liveStates are the states of an instance not yet gone.
var liveStates = []string{"pending", "running", "shutting-down", "stopping", "stopped"}

// Delete terminates the runner's instances; an instance already gone is
// no error, none at all is ErrNotFound.
func (p *Provider) Delete(ctx context.Context, name string) error {
	p.mu.Lock()
	delete(p.created, name)
	p.mu.Unlock()
	defer p.forget()
	found := false
	for _, region := range p.regionsOf(name) {
		live, err := p.describe(ctx, []string{region}, []types.Filter{
			tagFilter(runnerTag, name), {Name: aws.String("instance-state-name"), Values: liveStates}})
		if err != nil {
			return err
		}
		if len(live) == 0 {
			continue
		}
		found = true
		ids := make([]string, 0, len(live))
		for _, in := range live {
			ids = append(ids, aws.ToString(in.InstanceId))
		}
		c, err := p.client(ctx, region)
		if err != nil {
			return err
		}
		if _, err := c.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil && apiCode(err) != "InvalidInstanceID.NotFound" {
			return fmt.Errorf("terminate %s (%s): %w", name, strings.Join(ids, ", "), err)
		}
		p.log.Info("EC2 instance terminated", "runner", name, "instances", ids, "region", region)
	}
	p.mu.Lock()
	delete(p.regionOf, name)
	p.mu.Unlock()
	if !found {
		return fmt.Errorf("%w: %s", provider.ErrNotFound, name)
	}
	return nil
}

// List returns the instances not yet gone whose tags include all of tags.
func (p *Provider) List(ctx context.Context, tags map[string]string) ([]provider.Instance, error) {
	filters := []types.Filter{{Name: aws.String("tag-key"), Values: []string{runnerTag}},
		{Name: aws.String("instance-state-name"), Values: liveStates}}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		filters = append(filters, tagFilter(ec2Key(k), tags[k]))
	}
	list, err := p.describe(ctx, p.cfg.Regions, filters)
	if err != nil {
		return nil, err
	}
	out := make([]provider.Instance, 0, len(list))
	for _, in := range list {
		out = append(out, instance(in))
	}
	return out, nil
}
