package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startDev starts garo dev itself, as make run does (no demo), with every
// port free: the idle scenario measures the stack a user runs.
func startDev(ctx context.Context, bin, work string, logf func(string, ...any)) (*stack, error) {
	s := &stack{work: work}
	var ports [4]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	s.apiURL, s.simURL = "http://127.0.0.1:"+strconv.Itoa(ports[0]), "http://127.0.0.1:"+strconv.Itoa(ports[3])
	state := filepath.Join(work, "dev")
	logf("starting garo dev (state in %s)", state)
	var err error
	if _, err = s.start("garo dev", filepath.Join(bin, "garo"), nil, "dev", "--no-demo", "--state-dir", state,
		"--api-port", strconv.Itoa(ports[0]), "--temporal-port", strconv.Itoa(ports[1]), "--ui-port", strconv.Itoa(ports[2]),
		"--githubsim-port", strconv.Itoa(ports[3]), "--temporal-bin", filepath.Join(bin, "temporal"),
		"--githubsim-bin", filepath.Join(bin, "githubsim")); err != nil {
		return s, err
	}
	if err := waitHTTP(ctx, s.apiURL+"/readyz", 3*time.Minute); err != nil {
		return s, fmt.Errorf("garo dev (see %s): %w", filepath.Join(work, "garo dev.log"), err)
	}
	b, err := os.ReadFile(filepath.Join(state, "admin-token"))
	if err != nil {
		return s, fmt.Errorf("garo dev's admin token: %w", err)
	}
	s.token = strings.TrimSpace(string(b))
	return s, s.waitAgent(ctx, "local")
}

// measureIdle configures sc.Pools pools of sc.MinIdle warm runners on
// garo dev's agent (its default provider: a process each), waits until
// they are idle and the stack has had sc.Settle to calm down, then
// measures every process of the stack (garo dev, its Temporal dev server,
// simulator and runners) over sc.Idle.
func measureIdle(ctx context.Context, s *stack, sc Scenario, res *Result, logf func(string, ...any)) error {
	for i := range sc.Pools {
		cfg := map[string]any{"agent": "local", "labels": []string{"self-hosted", "linux"}, "maxRunners": sc.MaxRunners,
			"minIdle": sc.MinIdle}
		if _, err := s.api(ctx, "PUT", "/api/v1/repositories/"+repoName(i), cfg, nil); err != nil {
			return fmt.Errorf("configure pool %s: %w", repoName(i), err)
		}
	}
	logf("waiting for %d warm runners", sc.Pools*sc.MinIdle)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pools, err := s.pools(ctx)
		if err != nil {
			return err
		}
		idle := 0
		for _, p := range pools {
			idle += p.Counts.Idle
		}
		if idle == sc.Pools*sc.MinIdle {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d warm runners idle after 2 minutes", idle, sc.Pools*sc.MinIdle)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	logf("warm runners idle; letting the stack settle for %s", sc.Settle)
	if err := sleep(ctx, sc.Settle); err != nil {
		return err
	}
	logf("measuring the idle stack for %s", sc.Idle)
	root := s.procs[0].cmd.Process.Pid
	before := tree(root)
	began := time.Now()
	if err := sleep(ctx, sc.Idle); err != nil {
		return err
	}
	took := time.Since(began).Seconds()
	res.Idle, res.Seconds = map[string]IdleCost{}, took
	for pid, now := range tree(root) {
		c := res.Idle[now.name]
		if _, ok := before[pid]; ok {
			c.CPUPercent += (cpuSeconds(pid) - before[pid].cpu) / took * 100
		}
		c.RSSMiB += rssMiB(pid, "VmRSS:")
		res.Idle[now.name] = c
	}
	return nil
}

// sample is a process of the tree as first seen.
type sample struct {
	name string
	cpu  float64
}

// tree returns root and its descendants by pid, each named for what it is
// (garo dev, temporal, githubsim, runner) with its CPU seconds so far.
func tree(root int) map[int]sample {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	out := map[int]sample{}
	var walk func(pid int)
	walk = func(pid int) {
		out[pid] = sample{name: processName(pid, root), cpu: cpuSeconds(pid)}
		for _, c := range children[pid] {
			walk(c)
		}
	}
	walk(root)
	return out
}

func processName(pid, root int) string {
	if pid == root {
		return "garo dev"
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	switch {
	case len(args) > 1 && args[1] == "runner":
		return "runner"
	case len(args) > 0:
		return filepath.Base(args[0])
	}
	return "other"
}
