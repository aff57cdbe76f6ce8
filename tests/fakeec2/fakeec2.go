// Package fakeec2 is an in-memory EC2 that speaks the EC2 Query API
// (form-encoded actions, XML answers, EC2's error document) for
// RunInstances, DescribeInstances and TerminateInstances, so that the real
// aws-sdk-go-v2 client runs against it. It keeps ClientToken idempotency,
// filters by tag and state, and can fail on purpose: no capacity for an
// instance type, subnet or market, throttling, a refused permission. It can
// start a simulated runner for each instance from the runner variables in
// its user data, and terminates the instance when that runner exits, as an
// instance that shuts itself down does.
package fakeec2

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure the fake.
type Options struct {
	// AccessKeyID is the only access key whose signed requests are taken.
	AccessKeyID string
	// RunnerCommand, when set, is run for each launched instance with the
	// ACTIONS_RUNNER_INPUT_* variables its user data exports.
	RunnerCommand []string
	// DescribeLag hides an instance from DescribeInstances for this long
	// after its launch, as EC2's eventual consistency may.
	DescribeLag time.Duration
	Logger      *slog.Logger
}

// Fault makes a request fail: it returns EC2's error code (empty: none).
// It sees the action and its parameters, and may look at the fake.
type Fault func(action string, params url.Values) string

// Instance is one instance as the fake holds it.
type Instance struct {
	ID, Type, Subnet, Market, ImageID, ClientToken string
	LaunchTemplate                                 string
	SecurityGroups                                 []string
	Profile, KeyName                               string
	RootVolumeSize                                 int
	Tags                                           map[string]string
	State, Reason                                  string
	Launched                                       time.Time
	UserData                                       string
	MetadataTokens                                 string
	HopLimit                                       int
	ShutdownBehavior                               string
	// Env are the runner variables its user data exports.
	Env map[string]string
	cmd *exec.Cmd
}

// EC2 is the fake.
type EC2 struct {
	opts     Options
	mu       sync.Mutex
	next     int
	inst     map[string]*Instance
	tokens   map[string]string // client token -> instance id
	faults   []Fault
	requests map[string]int
	wg       sync.WaitGroup
}

// New returns an empty fake.
func New(opts Options) *EC2 {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &EC2{opts: opts, inst: map[string]*Instance{}, tokens: map[string]string{}, requests: map[string]int{}}
}

// Fail adds a fault; faults are asked in order, the first code wins.
func (f *EC2) Fail(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault)
}

// Requests counts the requests by action and outcome ("RunInstances" or
// "RunInstances InsufficientInstanceCapacity").
func (f *EC2) Requests() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.requests)
}

// Instances returns a copy of every instance, terminated ones included.
func (f *EC2) Instances() []Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Instance
	for _, id := range slices.Sorted(maps.Keys(f.inst)) {
		in := *f.inst[id]
		in.cmd = nil
		out = append(out, in)
	}
	return out
}

// Live returns the instances not terminated.
func (f *EC2) Live() []Instance {
	var out []Instance
	for _, in := range f.Instances() {
		if in.State != "terminated" {
			out = append(out, in)
		}
	}
	return out
}

// Close stops every runner it started.
func (f *EC2) Close() {
	f.mu.Lock()
	for _, in := range f.inst {
		if in.cmd != nil && in.cmd.Process != nil {
			_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// ServeHTTP answers one Query API request.
func (f *EC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+f.opts.AccessKeyID+"/") {
		f.fail(w, "unsigned", http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
		return
	}
	if err := r.ParseForm(); err != nil {
		f.fail(w, "form", http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	action := r.PostForm.Get("Action")
	f.mu.Lock()
	faults := slices.Clone(f.faults)
	f.mu.Unlock()
	var code string
	for _, fault := range faults {
		if code = fault(action, r.PostForm); code != "" {
			break
		}
	}
	if code != "" {
		status := http.StatusBadRequest
		if code == "RequestLimitExceeded" {
			status = http.StatusServiceUnavailable
		}
		f.fail(w, action, status, code, "fault injected: "+code)
		return
	}
	switch action {
	case "RunInstances":
		f.runInstances(w, r.PostForm)
	case "DescribeInstances":
		f.describeInstances(w, r.PostForm)
	case "TerminateInstances":
		f.terminateInstances(w, r.PostForm)
	default:
		f.fail(w, action, http.StatusBadRequest, "InvalidAction", "the fake does not serve "+action)
	}
}

func (f *EC2) count(key string) {
	f.mu.Lock()
	f.requests[key]++
	f.mu.Unlock()
}

func (f *EC2) fail(w http.ResponseWriter, action string, status int, code, msg string) {
	f.count(action + " " + code)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake-%d</RequestID></Response>`,
		esc(code), esc(msg), time.Now().UnixNano())
}

// list returns the values of a list parameter: name.1, name.2, ...
func list(p url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[name+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

var exportPattern = regexp.MustCompile(`(?m)^export (ACTIONS_RUNNER_INPUT_[A-Z_]+)='((?:[^']|'\\'')*)'$`)

func (f *EC2) runInstances(w http.ResponseWriter, p url.Values) {
	if p.Get("ImageId") == "" && p.Get("LaunchTemplate.LaunchTemplateId") == "" && p.Get("LaunchTemplate.LaunchTemplateName") == "" {
		f.fail(w, "RunInstances", http.StatusBadRequest, "MissingParameter", "The request must contain the parameter ImageId")
		return
	}
	if strings.HasPrefix(p.Get("ImageId"), "ami-bad") {
		f.fail(w, "RunInstances", http.StatusBadRequest, "InvalidAMIID.NotFound", "The image id '["+p.Get("ImageId")+"]' does not exist")
		return
	}
	f.mu.Lock()
	if id, ok := f.tokens[p.Get("ClientToken")]; ok && p.Get("ClientToken") != "" {
		in := f.inst[id]
		f.requests["RunInstances idempotent"]++
		f.mu.Unlock()
		f.writeReservation(w, "RunInstancesResponse", []*Instance{in})
		return
	}
	f.next++
	in := &Instance{ID: fmt.Sprintf("i-%017x", f.next), Type: p.Get("InstanceType"), Subnet: p.Get("SubnetId"),
		Market: "on-demand", ImageID: p.Get("ImageId"), ClientToken: p.Get("ClientToken"),
		LaunchTemplate: p.Get("LaunchTemplate.LaunchTemplateId") + p.Get("LaunchTemplate.LaunchTemplateName"),
		SecurityGroups: list(p, "SecurityGroupId"), Profile: p.Get("IamInstanceProfile.Name") + p.Get("IamInstanceProfile.Arn"),
		KeyName: p.Get("KeyName"), Tags: map[string]string{}, State: "running", Launched: time.Now().UTC().Truncate(time.Second),
		MetadataTokens: p.Get("MetadataOptions.HttpTokens"), ShutdownBehavior: p.Get("InstanceInitiatedShutdownBehavior"),
		Env: map[string]string{}}
	in.HopLimit, _ = strconv.Atoi(p.Get("MetadataOptions.HttpPutResponseHopLimit"))
	in.RootVolumeSize, _ = strconv.Atoi(p.Get("BlockDeviceMapping.1.Ebs.VolumeSize"))
	if p.Get("InstanceMarketOptions.MarketType") == "spot" {
		in.Market = "spot"
	}
	for i := 1; p.Has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
		if p.Get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) != "instance" {
			continue
		}
		for j := 1; ; j++ {
			k := fmt.Sprintf("TagSpecification.%d.Tag.%d.", i, j)
			if !p.Has(k + "Key") {
				break
			}
			in.Tags[p.Get(k+"Key")] = p.Get(k + "Value")
		}
	}
	if ud, err := base64.StdEncoding.DecodeString(p.Get("UserData")); err == nil {
		in.UserData = string(ud)
		for _, m := range exportPattern.FindAllStringSubmatch(in.UserData, -1) {
			in.Env[m[1]] = strings.ReplaceAll(m[2], `'\''`, `'`)
		}
	}
	f.inst[in.ID] = in
	if in.ClientToken != "" {
		f.tokens[in.ClientToken] = in.ID
	}
	f.requests["RunInstances"]++
	f.startRunner(in)
	f.mu.Unlock()
	f.writeReservation(w, "RunInstancesResponse", []*Instance{in})
}

// startRunner runs the runner command for in; the caller holds f.mu.
func (f *EC2) startRunner(in *Instance) {
	if len(f.opts.RunnerCommand) == 0 || len(in.Env) == 0 {
		return
	}
	cmd := exec.Command(f.opts.RunnerCommand[0], f.opts.RunnerCommand[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for _, k := range slices.Sorted(maps.Keys(in.Env)) {
		cmd.Env = append(cmd.Env, k+"="+in.Env[k])
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.opts.Logger.Error("Start the runner of an instance", "instance", in.ID, "error", err)
		return
	}
	in.cmd = cmd
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		err := cmd.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.opts.Logger.Info("Instance's runner exited; the instance shuts down", "instance", in.ID, "error", err)
		if in.State != "terminated" {
			// The user data shuts the instance down once the runner ends;
			// with the shutdown behaviour terminate, it is terminated.
			in.State, in.Reason = "terminated", "Client.InstanceInitiatedShutdown"
			if in.ShutdownBehavior != "terminate" {
				in.State = "stopped"
			}
		}
	}()
}

func (f *EC2) describeInstances(w http.ResponseWriter, p url.Values) {
	ids := list(p, "InstanceId")
	type filter struct {
		name   string
		values []string
	}
	var filters []filter
	for i := 1; p.Has(fmt.Sprintf("Filter.%d.Name", i)); i++ {
		filters = append(filters, filter{p.Get(fmt.Sprintf("Filter.%d.Name", i)), list(p, fmt.Sprintf("Filter.%d.Value", i))})
	}
	f.mu.Lock()
	var out []*Instance
	for _, id := range slices.Sorted(maps.Keys(f.inst)) {
		in := f.inst[id]
		if len(ids) > 0 && !slices.Contains(ids, id) || time.Since(in.Launched) < f.opts.DescribeLag {
			continue
		}
		ok := true
		for _, fl := range filters {
			switch {
			case fl.name == "instance-state-name":
				ok = ok && slices.Contains(fl.values, in.State)
			case strings.HasPrefix(fl.name, "tag:"):
				v, has := in.Tags[strings.TrimPrefix(fl.name, "tag:")]
				ok = ok && has && slices.Contains(fl.values, v)
			case fl.name == "tag-key":
				has := false
				for _, k := range fl.values {
					_, h := in.Tags[k]
					has = has || h
				}
				ok = ok && has
			default:
				ok = false
			}
		}
		if ok {
			out = append(out, in)
		}
	}
	f.requests["DescribeInstances"]++
	f.mu.Unlock()
	f.writeReservation(w, "DescribeInstancesResponse", out)
}

func (f *EC2) terminateInstances(w http.ResponseWriter, p url.Values) {
	ids := list(p, "InstanceId")
	f.mu.Lock()
	for _, id := range ids {
		if _, ok := f.inst[id]; !ok {
			f.mu.Unlock()
			f.fail(w, "TerminateInstances", http.StatusBadRequest, "InvalidInstanceID.NotFound", "The instance ID '"+id+"' does not exist")
			return
		}
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fake</requestId><instancesSet>`)
	for _, id := range ids {
		in := f.inst[id]
		prev := in.State
		if in.State != "terminated" {
			in.State, in.Reason = "terminated", "Client.UserInitiatedShutdown"
			if in.cmd != nil && in.cmd.Process != nil {
				_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
			}
		}
		fmt.Fprintf(&b, `<item><instanceId>%s</instanceId><currentState><code>%d</code><name>%s</name></currentState><previousState><code>%d</code><name>%s</name></previousState></item>`,
			id, stateCode(in.State), in.State, stateCode(prev), prev)
	}
	f.requests["TerminateInstances"]++
	f.mu.Unlock()
	b.WriteString(`</instancesSet></TerminateInstancesResponse>`)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(b.String()))
}

func stateCode(s string) int {
	switch s {
	case "pending":
		return 0
	case "running":
		return 16
	case "shutting-down":
		return 32
	case "terminated":
		return 48
	case "stopping":
		return 64
	}
	return 80 // stopped
}

// writeReservation answers the instances as one reservation; the caller
// must not hold f.mu.
func (f *EC2) writeReservation(w http.ResponseWriter, root string, list []*Instance) {
	f.mu.Lock()
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><%s xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fake</requestId>`, root)
	items := func() {
		for _, in := range list {
			fmt.Fprintf(&b, `<item><instanceId>%s</instanceId><imageId>%s</imageId><instanceState><code>%d</code><name>%s</name></instanceState>`,
				in.ID, esc(in.ImageID), stateCode(in.State), in.State)
			fmt.Fprintf(&b, `<instanceType>%s</instanceType><launchTime>%s</launchTime><subnetId>%s</subnetId><clientToken>%s</clientToken>`,
				esc(in.Type), in.Launched.Format(time.RFC3339), esc(in.Subnet), esc(in.ClientToken))
			if in.Market == "spot" {
				b.WriteString(`<instanceLifecycle>spot</instanceLifecycle>`)
			}
			if in.Reason != "" {
				fmt.Fprintf(&b, `<stateReason><code>%s</code><message>%s</message></stateReason>`, esc(in.Reason), esc(in.Reason))
			}
			b.WriteString(`<tagSet>`)
			for _, k := range slices.Sorted(maps.Keys(in.Tags)) {
				fmt.Fprintf(&b, `<item><key>%s</key><value>%s</value></item>`, esc(k), esc(in.Tags[k]))
			}
			b.WriteString(`</tagSet></item>`)
		}
	}
	if root == "RunInstancesResponse" {
		b.WriteString(`<reservationId>r-fake</reservationId><ownerId>123456789012</ownerId><instancesSet>`)
		items()
		b.WriteString(`</instancesSet>`)
	} else {
		b.WriteString(`<reservationSet>`)
		if len(list) > 0 {
			b.WriteString(`<item><reservationId>r-fake</reservationId><ownerId>123456789012</ownerId><instancesSet>`)
			items()
			b.WriteString(`</instancesSet></item>`)
		}
		b.WriteString(`</reservationSet>`)
	}
	fmt.Fprintf(&b, `</%s>`, root)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(b.String()))
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
